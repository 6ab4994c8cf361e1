//! The checks of `blue-green.checks`, run against the new color before any
//! traffic moves and throughout every soak. An `http` check is a GET that
//! must answer the expected status; a `command` check is a program that
//! must exit 0, with the new color's kubeconfig in `$KUBECONFIG`, the
//! kubectl rekube uses in `$KUBECTL`, the color in `$REKUBE_COLOR`, its
//! share of traffic in `$REKUBE_PERCENT` and its address in `$REKUBE_ADDRESS`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rekube_spec::Check;

/// How long one check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// What a check runs against.
#[derive(Debug, Clone)]
pub struct Target {
    /// The new color (cluster name).
    pub color: String,
    /// Its address (`{address}`), when `blue-green.address` names one.
    pub address: Option<String>,
    /// Its kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// Percent of traffic on it now.
    pub percent: u32,
}

/// What `{address}` becomes in a URL: an IPv6 address in brackets.
fn url_for(template: &str, address: Option<&str>) -> Result<String, String> {
    if !template.contains("{address}") {
        return Ok(template.to_string());
    }
    let Some(a) = address else {
        return Err(format!("`{template}` uses {{address}}, and `blue-green.address` names no Service"));
    };
    let host = if a.contains(':') { format!("[{a}]") } else { a.to_string() };
    Ok(template.replace("{address}", &host))
}

/// A short name for a check, for progress and failures.
pub fn describe(check: &Check) -> String {
    match (&check.http, &check.command) {
        (Some(h), _) => format!("GET {}", h.value.url.value),
        (_, Some(c)) => c.value.join(" "),
        _ => "?".to_string(),
    }
}

/// Runs one check; `Err` says why it failed, in one line.
pub async fn run(check: &Check, target: &Target, dir: &Path) -> Result<(), String> {
    match (&check.http, &check.command) {
        (Some(h), _) => {
            let expect = h.value.expect.as_ref().map_or(200, |e| e.value);
            match (&h.value.host, target.address.as_deref()) {
                (Some(host), Some(addr)) if h.value.url.value.contains("{address}") => {
                    let url = h.value.url.value.replace("{address}", &host.value);
                    http_via(&url, &host.value, addr, expect).await
                }
                _ => http(&url_for(&h.value.url.value, target.address.as_deref())?, expect, None).await,
            }
        }
        (_, Some(c)) => command(&c.value, target, dir).await,
        _ => Err("a check needs `http` or `command`".to_string()),
    }
}

/// A GET of `url` (whose host is `host`) sent to `address`: the name is
/// asked for, the new color answers.
async fn http_via(url: &str, host: &str, address: &str, expect: u16) -> Result<(), String> {
    let port = reqwest::Url::parse(url).ok().and_then(|u| u.port_or_known_default()).unwrap_or(443);
    let to = tokio::net::lookup_host((address, port))
        .await
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .next()
        .ok_or_else(|| format!("{address} resolves to no address"))?;
    http(url, expect, Some((host, to))).await
}

async fn http(url: &str, expect: u16, resolve: Option<(&str, std::net::SocketAddr)>) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(CHECK_TIMEOUT.min(Duration::from_secs(10)));
    if let Some((host, to)) = resolve {
        builder = builder.resolve(host, to);
    }
    let client = builder.build().map_err(|e| format!("GET {url}: {e}"))?;
    let status = client.get(url).send().await.map_err(|e| format!("GET {url}: {e}"))?.status().as_u16();
    if status == expect { Ok(()) } else { Err(format!("GET {url} answered {status}, expected {expect}")) }
}

async fn command(argv: &[String], target: &Target, dir: &Path) -> Result<(), String> {
    let line = argv.join(" ");
    let (program, args) = argv.split_first().ok_or("the check's command is empty")?;
    let program = if program.contains('/') { dir.join(program).display().to_string() } else { program.clone() };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .env("REKUBE_COLOR", &target.color)
        .env("REKUBE_PERCENT", target.percent.to_string())
        .env("KUBECTL", rekube_render::kubectl_path(&rekube_cluster::local::cache_dir()));
    if let Some(k) = &target.kubeconfig {
        cmd.env("KUBECONFIG", k);
    }
    if let Some(a) = &target.address {
        cmd.env("REKUBE_ADDRESS", a);
    }
    let child = cmd.spawn().map_err(|e| format!("cannot run `{line}`: {e}"))?;
    let out = match tokio::time::timeout(CHECK_TIMEOUT, child.wait_with_output()).await {
        Ok(out) => out.map_err(|e| format!("`{line}`: {e}"))?,
        Err(_) => return Err(format!("`{line}` did not finish within {}s", CHECK_TIMEOUT.as_secs())),
    };
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let said = if said.is_empty() { String::from_utf8_lossy(&out.stdout).trim().to_string() } else { said };
    let last = said.lines().last().unwrap_or_default();
    let status = out.status.code().map_or("killed".to_string(), |c| format!("exit {c}"));
    Err(if last.is_empty() {
        format!("`{line}` failed ({status})")
    } else {
        format!("`{line}` failed ({status}): {last}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_goes_into_urls_and_v6_gets_brackets() {
        assert_eq!(url_for("http://{address}/healthz", Some("198.18.0.7")).unwrap(), "http://198.18.0.7/healthz");
        assert_eq!(url_for("http://{address}:8080/", Some("fd00::1")).unwrap(), "http://[fd00::1]:8080/");
        assert_eq!(url_for("http://127.0.0.1/", None).unwrap(), "http://127.0.0.1/");
        assert!(url_for("http://{address}/", None).unwrap_err().contains("names no Service"));
    }

    #[tokio::test]
    async fn a_host_is_asked_for_at_the_colors_address() {
        // A server on 127.0.0.1 that answers 200 only to Host: app.example.test.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten().take(2) {
                let mut buf = [0u8; 2048];
                let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
                let asked = String::from_utf8_lossy(&buf[..n]).to_lowercase();
                let status = if asked.contains("host: app.example.test") { "200 OK" } else { "404 Not Found" };
                let _ = std::io::Write::write_all(
                    &mut s,
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes(),
                );
            }
        });
        let url = format!("http://app.example.test:{port}/healthz");
        http_via(&url, "app.example.test", "127.0.0.1", 200).await.unwrap();
        let plain = http(&format!("http://127.0.0.1:{port}/healthz"), 200, None).await.unwrap_err();
        assert!(plain.ends_with("answered 404, expected 200"), "{plain}");
    }

    #[tokio::test]
    async fn a_failing_command_says_its_exit_and_last_line_and_gets_the_colors_environment() {
        let dir = tempfile::tempdir().unwrap();
        let t = Target { color: "prod-green".into(), address: None, kubeconfig: None, percent: 50 };
        let argv = |s: &str| vec!["sh".to_string(), "-c".to_string(), s.to_string()];
        command(&argv("test \"$REKUBE_COLOR:$REKUBE_PERCENT\" = prod-green:50"), &t, dir.path()).await.unwrap();
        let err = command(&argv("echo starting; echo 'p99 too high' >&2; exit 3"), &t, dir.path()).await.unwrap_err();
        assert!(err.ends_with("failed (exit 3): p99 too high"), "{err}");
    }
}
