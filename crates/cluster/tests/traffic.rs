//! Blue/green traffic, end to end: Route53 weighted records through rekube's
//! own signed client against a real moto server (boto3 creates the zone and
//! checks what was written), and the exec protocol against its reference
//! program, examples/platform/traffic/file-traffic.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use rekube_cluster::traffic::{AwsCredentials, Route53Config, Target, Traffic, TrafficError};
use rekube_testbed::Moto;

const BLUE: &str = "prod-blue";
const GREEN: &str = "prod-green";

fn colors() -> Vec<String> {
    vec![BLUE.into(), GREEN.into()]
}

fn target(color: &str, address: Option<&str>, weight: u8) -> Target {
    Target { color: color.into(), address: address.map(str::to_string), weight }
}

fn credentials() -> AwsCredentials {
    AwsCredentials { access_key_id: "testing".into(), secret_access_key: "testing".into(), session_token: None }
}

fn route53(moto: &Moto, zone: &str) -> Traffic {
    let mut config = Route53Config::new(zone, "app.example.com");
    config.endpoint = Some(moto.endpoint().to_string());
    config.credentials = Some(credentials());
    Traffic::Route53(config)
}

/// Runs `script` with boto3's Route53 client as `r53`; its stdout.
fn boto3(moto: &Moto, script: &str) -> String {
    let prelude = format!(
        "import boto3, json\nr53 = boto3.client('route53', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n",
        moto.endpoint()
    );
    let out = Command::new(moto.python())
        .args(["-c", &format!("{prelude}{script}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", moto.python().display()));
    assert!(out.status.success(), "boto3 failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Creates hosted zone `name` with boto3; its id (`/hostedzone/...`).
fn create_zone(moto: &Moto, name: &str) -> String {
    boto3(moto, &format!("print(r53.create_hosted_zone(Name='{name}', CallerReference='{name}')['HostedZone']['Id'])"))
}

/// The zone's weighted records as boto3 lists them: `(name, type, set id, weight, ttl, values)`.
fn listed(moto: &Moto, zone_id: &str) -> Vec<(String, String, String, u64, u64, Vec<String>)> {
    let text = boto3(
        moto,
        &format!(
            "sets = r53.list_resource_record_sets(HostedZoneId='{zone_id}')['ResourceRecordSets']\n\
             print(json.dumps([[s['Name'], s['Type'], s['SetIdentifier'], s['Weight'], s['TTL'], \
             [r['Value'] for r in s['ResourceRecords']]] for s in sets if 'SetIdentifier' in s]))"
        ),
    );
    let mut sets: Vec<(String, String, String, u64, u64, Vec<String>)> = serde_json::from_str(&text).unwrap();
    sets.sort_by(|a, b| a.2.cmp(&b.2));
    sets
}

fn record(kind: &str, color: &str, weight: u64, value: &str) -> (String, String, String, u64, u64, Vec<String>) {
    ("app.example.com.".into(), kind.into(), color.into(), weight, 60, vec![value.into()])
}

#[tokio::test]
async fn route53_weights_move_between_colors_in_one_change_each() {
    let moto = Moto::start().await;
    let zone_id = create_zone(&moto, "example.com");
    let traffic = route53(&moto, "example.com.");
    assert_eq!(traffic.describe(), "route53 app.example.com. (zone example.com.)");

    // No records yet: every color has nothing.
    assert_eq!(traffic.read(&colors()).await.unwrap(), vec![target(BLUE, None, 0), target(GREEN, None, 0)]);

    let all_blue = vec![target(BLUE, Some("10.0.0.1"), 100), target(GREEN, Some("lb.green.example.net"), 0)];
    traffic.set(&all_blue).await.unwrap();
    assert_eq!(traffic.read(&colors()).await.unwrap(), all_blue);
    assert_eq!(
        listed(&moto, &zone_id),
        vec![record("A", BLUE, 100, "10.0.0.1"), record("CNAME", GREEN, 0, "lb.green.example.net")],
        "what boto3 lists is what rekube wrote"
    );

    // Weights only: the addresses stay.
    traffic.set(&[target(BLUE, None, 50), target(GREEN, None, 50)]).await.unwrap();
    assert_eq!(
        traffic.read(&colors()).await.unwrap(),
        vec![target(BLUE, Some("10.0.0.1"), 50), target(GREEN, Some("lb.green.example.net"), 50)]
    );

    // The zone by id reads the same records.
    let by_id = route53(&moto, &zone_id);
    assert_eq!(by_id.read(&[GREEN.into()]).await.unwrap(), vec![target(GREEN, Some("lb.green.example.net"), 50)]);

    traffic.remove(BLUE).await.unwrap();
    assert_eq!(
        traffic.read(&colors()).await.unwrap(),
        vec![target(BLUE, None, 0), target(GREEN, Some("lb.green.example.net"), 50)]
    );
    assert_eq!(listed(&moto, &zone_id), vec![record("CNAME", GREEN, 50, "lb.green.example.net")]);
    traffic.remove(BLUE).await.expect("removing an absent color is fine");

    // A color whose address turns from a hostname into an IPv6 address
    // changes record type: the CNAME goes in the same batch.
    traffic.set(&[target(GREEN, Some("2001:db8::7"), 100)]).await.unwrap();
    assert_eq!(traffic.read(&[GREEN.into()]).await.unwrap(), vec![target(GREEN, Some("2001:db8::7"), 100)]);
    assert_eq!(listed(&moto, &zone_id), vec![record("AAAA", GREEN, 100, "2001:db8::7")]);
}

#[tokio::test]
async fn route53_names_a_zone_that_does_not_exist() {
    let moto = Moto::start().await;
    create_zone(&moto, "example.com");
    let err = route53(&moto, "example.org").read(&colors()).await.unwrap_err();
    assert!(matches!(err, TrafficError::ZoneNotFound { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "route53 hosted zone `example.org.` not found (no hosted zone has that name; give its name or its id)"
    );

    let err = route53(&moto, "/hostedzone/ZNOSUCHZONE").set(&[target(BLUE, Some("10.0.0.1"), 100)]).await.unwrap_err();
    let TrafficError::Api { status, code, .. } = &err else { panic!("{err:?}") };
    assert_eq!((*status, code.as_str()), (404, "NoSuchHostedZone"), "{err}");
    assert!(
        err.to_string().starts_with(
            "route53 app.example.com. (zone ZNOSUCHZONE): \
             Route53 ListResourceRecordSets failed: HTTP 404: NoSuchHostedZone: "
        ),
        "{err}"
    );
}

#[tokio::test]
async fn route53_without_credentials_says_what_to_set() {
    // Explicit but empty credentials: the same as none in the environment,
    // without touching this process's environment.
    let mut config = Route53Config::new("example.com", "app.example.com");
    config.endpoint = Some("http://127.0.0.1:9".into());
    config.credentials =
        Some(AwsCredentials { access_key_id: String::new(), secret_access_key: String::new(), session_token: None });
    let err = Traffic::Route53(config).read(&colors()).await.unwrap_err();
    assert!(matches!(err, TrafficError::MissingCredentials { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(
            "route53 app.example.com. (zone example.com.): no AWS credentials: \
             set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        ),
        "{err}"
    );
}

fn reference_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/platform/traffic/file-traffic.sh")
}

fn exec(program: PathBuf, dir: &Path) -> Traffic {
    Traffic::Exec {
        program,
        spec_dir: dir.to_path_buf(),
        state_dir: dir.join(".rekube/traffic/prod"),
        environment: "prod".into(),
        record: Some("app.example.com".into()),
    }
}

#[tokio::test]
async fn exec_traffic_round_trips_through_the_reference_program() {
    let dir = tempfile::tempdir().unwrap();
    let traffic = exec(reference_script(), dir.path());
    assert_eq!(traffic.read(&colors()).await.unwrap(), vec![target(BLUE, None, 0), target(GREEN, None, 0)]);

    let all_blue = vec![target(BLUE, Some("10.0.0.1"), 100), target(GREEN, Some("lb.green.example.net"), 0)];
    traffic.set(&all_blue).await.unwrap();
    assert_eq!(traffic.read(&colors()).await.unwrap(), all_blue);

    traffic.set(&[target(BLUE, None, 50), target(GREEN, None, 50)]).await.unwrap();
    assert_eq!(
        traffic.read(&colors()).await.unwrap(),
        vec![target(BLUE, Some("10.0.0.1"), 50), target(GREEN, Some("lb.green.example.net"), 50)]
    );
    // Only the colors asked about are answered.
    assert_eq!(traffic.read(&[GREEN.into()]).await.unwrap(), vec![target(GREEN, Some("lb.green.example.net"), 50)]);

    traffic.remove(BLUE).await.unwrap();
    assert_eq!(
        traffic.read(&colors()).await.unwrap(),
        vec![target(BLUE, None, 0), target(GREEN, Some("lb.green.example.net"), 50)]
    );
    traffic.remove(BLUE).await.expect("removing an absent color is fine");
    let kept = std::fs::read_to_string(dir.path().join(".rekube/traffic/prod/traffic.json")).unwrap();
    assert_eq!(
        kept,
        "{\"targets\":[\n{\"color\":\"prod-green\",\"address\":\"lb.green.example.net\",\"weight\":50}\n]}\n"
    );
}

fn program(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\ncat >/dev/null\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_failing_traffic_program_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let failing = program(dir.path(), "failing.sh", "echo 'cannot reach the DNS API' >&2\necho 'gave up'\nexit 3");
    let err = exec(failing.clone(), dir.path()).set(&[target(BLUE, Some("10.0.0.1"), 100)]).await.unwrap_err();
    assert!(matches!(err, TrafficError::Tool(_)), "{err:?}");
    assert_eq!(err.to_string(), format!("`{} set` failed (exit 3): gave up", failing.display()));

    let liar = program(dir.path(), "liar.sh", r#"echo '{"targets":[{"color":"prod-red","weight":100}]}'"#);
    let err = exec(liar.clone(), dir.path()).read(&colors()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "traffic program {} answered `read` with something that is not the protocol's JSON: \
             unknown color \"prod-red\" (asked for prod-blue, prod-green)",
            liar.display()
        )
    );

    let greedy = program(dir.path(), "greedy.sh", r#"echo '{"targets":[{"color":"prod-blue","weight":300}]}'"#);
    let err = exec(greedy.clone(), dir.path()).read(&colors()).await.unwrap_err();
    assert!(err.to_string().contains(&greedy.display().to_string()), "{err}");
    assert!(err.to_string().ends_with("color prod-blue has weight 300, not a percent (0..=100)"), "{err}");

    let chatty = program(dir.path(), "chatty.sh", "echo done");
    let err = exec(chatty, dir.path()).remove(BLUE).await.unwrap_err();
    assert!(matches!(err, TrafficError::Protocol { command: "remove", .. }), "{err:?}");
}

/// One request a fake Route53 saw: method, URL, lower-case headers, body.
#[derive(Debug, Clone, serde::Serialize)]
struct Seen {
    method: String,
    url: String,
    headers: std::collections::BTreeMap<String, String>,
    body: String,
}

/// A Route53 stand-in whose changes stay PENDING for one GetChange (moto's
/// are INSYNC at once); it keeps every request it gets.
fn pending_route53() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Seen>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = server.server_addr().to_ip().expect("an IP listener").port();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut polls = 0;
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            std::io::Read::read_to_string(request.as_reader(), &mut body).unwrap();
            let url = request.url().to_string();
            let headers = request
                .headers()
                .iter()
                .map(|h| (h.field.as_str().as_str().to_ascii_lowercase(), h.value.as_str().to_string()))
                .collect();
            let method = request.method().as_str().to_string();
            log.lock().unwrap().push(Seen { method: method.clone(), url: url.clone(), headers, body });
            let status = |s: &str| {
                format!(
                    "<ChangeInfo><Id>/change/CPENDING</Id><Status>{s}</Status><SubmittedAt>x</SubmittedAt></ChangeInfo>"
                )
            };
            let xml = if url.contains("/rrset?") {
                "<ListResourceRecordSetsResponse><ResourceRecordSets></ResourceRecordSets>\
                 <IsTruncated>false</IsTruncated><MaxItems>300</MaxItems></ListResourceRecordSetsResponse>"
                    .to_string()
            } else if method == "POST" {
                format!("<ChangeResourceRecordSetsResponse>{}</ChangeResourceRecordSetsResponse>", status("PENDING"))
            } else {
                polls += 1;
                format!(
                    "<GetChangeResponse>{}</GetChangeResponse>",
                    status(if polls < 2 { "PENDING" } else { "INSYNC" })
                )
            };
            let _ = request.respond(tiny_http::Response::from_string(xml));
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

#[tokio::test]
async fn route53_requests_are_signed_as_botocore_signs_them_and_pending_changes_are_polled() {
    let (endpoint, seen) = pending_route53();
    let mut config = Route53Config::new("Z0FAKE", "app.example.com");
    config.endpoint = Some(endpoint.clone());
    config.credentials = Some(AwsCredentials {
        access_key_id: "AKIDEXAMPLE".into(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
        session_token: Some("session+token/=".into()),
    });
    Traffic::Route53(config).set(&[target(BLUE, Some("10.0.0.1"), 100)]).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    let calls: Vec<_> = seen.iter().map(|s| format!("{} {}", s.method, s.url)).collect();
    assert_eq!(
        calls,
        [
            "GET /2013-04-01/hostedzone/Z0FAKE/rrset?name=app.example.com.&maxitems=300",
            "POST /2013-04-01/hostedzone/Z0FAKE/rrset",
            "GET /2013-04-01/change/CPENDING",
            "GET /2013-04-01/change/CPENDING",
        ],
        "a PENDING change is asked about again until INSYNC"
    );
    assert!(seen[1].body.contains("<Action>UPSERT</Action>"), "{}", seen[1].body);

    // botocore signs each request again at the same instant: the
    // Authorization headers must be identical.
    let moto_python = rekube_cluster::local::cache_dir().join("venv/bin/python3");
    let script = format!(
        r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
creds = Credentials('AKIDEXAMPLE', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY', 'session+token/=')
for seen in json.load(sys.stdin):
    headers = {{'Content-Type': seen['headers']['content-type']}} if seen['body'] else {{}}
    req = AWSRequest(method=seen['method'], url='{endpoint}' + seen['url'], data=seen['body'] or None, headers=headers)
    auth = SigV4Auth(creds, 'route53', 'us-east-1')
    req.context['timestamp'] = seen['headers']['x-amz-date']
    auth._modify_request_before_signing(req)
    canonical = auth.canonical_request(req)
    auth._inject_signature_to_request(req, auth.signature(auth.string_to_sign(req, canonical), req))
    print(req.headers['Authorization'])
"#
    );
    let mut child = Command::new(&moto_python)
        .args(["-c", &script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {}: {e}\n(set it up with `{}`)", moto_python.display(), rekube_testbed::SETUP_HINT)
        });
    serde_json::to_writer(child.stdin.take().unwrap(), &seen).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let botocore: Vec<String> = String::from_utf8(out.stdout).unwrap().lines().map(str::to_string).collect();
    let ours: Vec<String> = seen.iter().map(|s| s.headers["authorization"].clone()).collect();
    assert_eq!(ours, botocore);
    assert!(seen.iter().all(|s| s.headers["x-amz-security-token"] == "session+token/="));
    assert!(ours[1].contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"), "{}", ours[1]);
}
