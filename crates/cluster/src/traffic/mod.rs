//! Traffic between the two clusters ("colors") of a blue/green environment.
//!
//! An upgrade builds the idle color, then moves traffic onto it step by step;
//! this module is the only place that knows how the split is made. Two ways:
//!
//! - **Route53**: one weighted record per color, all with the same name,
//!   `SetIdentifier` = the color's cluster name, `Weight` = its percent. A
//!   color's address picks the record type: an IPv4 address makes an `A`
//!   record, an IPv6 address an `AAAA` record, anything else a `CNAME`. Every
//!   change is one atomic `ChangeBatch`, so resolvers never see the name
//!   without a record, and rekube waits until Route53 reports it `INSYNC`.
//! - **exec**: any program speaking the JSON traffic protocol below, for
//!   other DNS services and load balancers.
//!
//! # The exec traffic protocol (`rekube.dev/traffic/v1`)
//!
//! rekube runs `<program> <command>` from the spec's directory, writes one
//! JSON request on its stdin and reads one JSON object from its stdout. Logs
//! go to stderr (shown to the user as they come). A non-zero exit is a
//! failure, reported with the program, its exit status and the last line it
//! printed on stdout. The program has `$REKUBE_TOOL_TIMEOUT` (default 30 min)
//! to answer. Every request carries:
//!
//! ```json
//! {"protocol": "rekube.dev/traffic/v1", "command": "read",
//!  "environment": "prod", "record": "app.example.com",
//!  "state_dir": "/path/.rekube/upgrade/prod.traffic", "colors": ["prod-blue", "prod-green"]}
//! ```
//!
//! `record` is the spec's `record:` or `null`; `state_dir` exists and is the
//! program's to keep files in; `colors` are the colors the command is about
//! (`read`: those asked for; `set`: the targets'; `remove`: the one). The
//! command is also the program's first argument, as for exec providers. The
//! commands:
//!
//! - `read`: answer `{"targets": [{"color": "prod-blue", "address": "10.0.0.1", "weight": 100}, ...]}`,
//!   one entry per color that has a share (a color left out has weight 0 and
//!   no address; `address` may be `null`; `weight` is 0..=100). Colors not in
//!   `colors` are an error.
//! - `set`: the request also has `"targets": [{"color": ..., "address": ..., "weight": ...}]`;
//!   make all of them take effect at once (a target whose `address` is `null`
//!   keeps the address it has) and answer `{}` once they are in effect.
//!   Colors not in `targets` are left as they are.
//! - `remove`: the request also has `"color": "prod-blue"`; remove that
//!   color's share (already absent is fine) and answer `{}` once in effect.
//!
//! An empty answer counts as `{}`. `examples/platform/traffic/file-traffic.sh` is the
//! reference implementation: it keeps the split in `$state_dir/traffic.json`.

mod exec;
mod route53;

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::tool::ToolError;

pub use route53::AwsCredentials;

/// The exec traffic protocol's version string.
pub const TRAFFIC_PROTOCOL: &str = "rekube.dev/traffic/v1";

/// The default Route53 API endpoint.
pub const ROUTE53_ENDPOINT: &str = "https://route53.amazonaws.com";

/// The region Route53 requests are signed for unless configured.
pub const ROUTE53_REGION: &str = "us-east-1";

/// How often a pending Route53 change is polled.
pub const SYNC_POLL: Duration = Duration::from_secs(1);

/// How long a Route53 change may take to be in sync.
pub const SYNC_DEADLINE: Duration = Duration::from_secs(5 * 60);

/// One color's share: its DNS record value (an IPv4/IPv6 address -> A/AAAA
/// record, else a hostname -> CNAME) and weight.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// The color: the cluster's name (the record's `SetIdentifier`).
    pub color: String,
    /// What the color's record points at. Read: the record's value, `None`
    /// when the color has no record. Set: `None` keeps the current value
    /// (an error when the color has no record yet).
    pub address: Option<String>,
    /// Percent of the traffic, 0..=100.
    pub weight: u8,
}

/// Where traffic is split.
#[derive(Debug, Clone)]
pub enum Traffic {
    /// Route53 weighted records.
    Route53(Route53Config),
    /// An executable speaking the JSON traffic protocol.
    Exec {
        /// The program (relative paths: from `spec_dir`).
        program: PathBuf,
        /// The spec's directory: the program runs there.
        spec_dir: PathBuf,
        /// A directory the program may keep state in (created before each call).
        state_dir: PathBuf,
        /// The environment's name.
        environment: String,
        /// The record name from the spec, if any.
        record: Option<String>,
    },
}

/// Route53 settings: which weighted records, where, and how to sign.
#[derive(Debug, Clone)]
pub struct Route53Config {
    /// A zone name (`example.com.` or `example.com`) or a hosted zone id
    /// (`Z0123...` or `/hostedzone/Z0123...`): a name without dots made of
    /// upper-case letters and digits is taken as an id.
    pub zone: String,
    /// The record name: `app.example.com` (trailing dot optional).
    pub record: String,
    /// The records' TTL in seconds.
    pub ttl: u32,
    /// The API endpoint. Default: `$AWS_ENDPOINT_URL_ROUTE_53`, else
    /// `$AWS_ENDPOINT_URL`, else `$AWS_ENDPOINT`, else [`ROUTE53_ENDPOINT`].
    pub endpoint: Option<String>,
    /// The signing region. Default: [`ROUTE53_REGION`] (Route53 is global
    /// and signs with us-east-1, whatever `$AWS_REGION` says).
    pub region: Option<String>,
    /// Credentials to sign with. Default: `$AWS_ACCESS_KEY_ID`,
    /// `$AWS_SECRET_ACCESS_KEY` and `$AWS_SESSION_TOKEN`.
    pub credentials: Option<AwsCredentials>,
}

impl Route53Config {
    /// `record` in `zone`, TTL 60 s, endpoint, region and credentials from
    /// the environment.
    pub fn new(zone: impl Into<String>, record: impl Into<String>) -> Self {
        Self { zone: zone.into(), record: record.into(), ttl: 60, endpoint: None, region: None, credentials: None }
    }
}

/// Why traffic could not be read or moved.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    /// The caller asked for something that cannot be done.
    #[error("{traffic}: {problem}")]
    InvalidTarget {
        /// [`Traffic::describe`].
        traffic: String,
        /// What is wrong with the targets.
        problem: String,
    },
    /// No AWS credentials in the environment.
    #[error(
        "{traffic}: no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY \
         (and AWS_SESSION_TOKEN for temporary ones; for a profile: \
         `eval \"$(aws configure export-credentials --format env)\"`)"
    )]
    MissingCredentials {
        /// [`Traffic::describe`].
        traffic: String,
    },
    /// The configured endpoint is not an http(s) URL.
    #[error("{traffic}: the Route53 endpoint `{endpoint}` is not an http:// or https:// URL")]
    InvalidEndpoint {
        /// [`Traffic::describe`].
        traffic: String,
        /// The endpoint.
        endpoint: String,
    },
    /// No hosted zone has the configured name.
    #[error("route53 hosted zone `{zone}` not found (no hosted zone has that name; give its name or its id)")]
    ZoneNotFound {
        /// The zone name, normalised.
        zone: String,
    },
    /// Several hosted zones have the configured name.
    #[error(
        "route53 hosted zone `{zone}` is ambiguous: {} hosted zones have that name ({}); give the id of one",
        ids.len(),
        ids.join(", ")
    )]
    ZoneAmbiguous {
        /// The zone name, normalised.
        zone: String,
        /// Their ids.
        ids: Vec<String>,
    },
    /// Route53 could not be reached.
    #[error("{traffic}: cannot reach Route53 at {endpoint} ({action}): {}", error_chain(cause))]
    Unreachable {
        /// [`Traffic::describe`].
        traffic: String,
        /// The API call.
        action: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The cause.
        cause: reqwest::Error,
    },
    /// Route53 refused a call.
    #[error("{traffic}: Route53 {action} failed: HTTP {status}: {code}: {message}")]
    Api {
        /// [`Traffic::describe`].
        traffic: String,
        /// The API call.
        action: &'static str,
        /// The HTTP status.
        status: u16,
        /// AWS's error code (`NoSuchHostedZone`, `InvalidChangeBatch`, ...).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// Route53 answered something that is not its XML.
    #[error("{traffic}: Route53 {action} answered something unreadable: {problem}")]
    Response {
        /// [`Traffic::describe`].
        traffic: String,
        /// The API call.
        action: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// A request could not be signed.
    #[error("{traffic}: cannot sign the Route53 request: {cause}")]
    Signing {
        /// [`Traffic::describe`].
        traffic: String,
        /// The cause.
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A change was not in sync by the deadline.
    #[error(
        "{traffic}: Route53 change {change} was not in sync after {} (it may still apply)",
        humantime::format_duration(*waited)
    )]
    NotInSync {
        /// [`Traffic::describe`].
        traffic: String,
        /// The change id.
        change: String,
        /// How long rekube waited.
        waited: Duration,
    },
    /// A record exists that rekube cannot manage.
    #[error("{traffic}: {problem}")]
    Unmanaged {
        /// [`Traffic::describe`].
        traffic: String,
        /// What is there.
        problem: String,
    },
    /// The traffic program failed, could not start or ran too long.
    #[error(transparent)]
    Tool(#[from] ToolError),
    /// The traffic program answered something that is not the protocol.
    #[error("traffic program {program} answered `{command}` with something that is not the protocol's JSON: {problem}")]
    Protocol {
        /// The program.
        program: String,
        /// The command.
        command: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// Local I/O.
    #[error("{path}: {cause}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        cause: std::io::Error,
    },
}

/// An error and its causes on one line: reqwest's own message rarely says
/// what went wrong ("error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = cause.source();
    }
    text
}

impl Traffic {
    /// Current weight of each of `colors` (a color without a record has 0).
    /// Also returns the address each record points at. One target per
    /// color, in the order of `colors`.
    pub async fn read(&self, colors: &[String]) -> Result<Vec<Target>, TrafficError> {
        match self {
            Self::Route53(config) => route53::Client::new(config)?.read(colors).await,
            Self::Exec { .. } => exec::read(self, colors).await,
        }
    }

    /// Sets every target's record in ONE atomic change (Route53: one
    /// ChangeBatch of UPSERTs), then waits until the change is in sync
    /// (Route53 GetChange INSYNC, polled every [`SYNC_POLL`], deadline
    /// [`SYNC_DEADLINE`]). Never leaves a moment with no record. Colors not
    /// among `targets` are left alone.
    pub async fn set(&self, targets: &[Target]) -> Result<(), TrafficError> {
        self.check_targets(targets)?;
        if targets.is_empty() {
            return Ok(());
        }
        match self {
            Self::Route53(config) => route53::Client::new(config)?.set(targets).await,
            Self::Exec { .. } => exec::set(self, targets).await,
        }
    }

    /// Deletes one color's record (Route53: DELETE needs the exact current
    /// rrset, so it is read first; absent = Ok). Waits for sync.
    pub async fn remove(&self, color: &str) -> Result<(), TrafficError> {
        match self {
            Self::Route53(config) => route53::Client::new(config)?.remove(color).await,
            Self::Exec { .. } => exec::remove(self, color).await,
        }
    }

    /// A short description for messages: `route53 app.example.com. (zone
    /// example.com.)` or `exec ./traffic.sh`.
    pub fn describe(&self) -> String {
        match self {
            Self::Route53(c) => format!("route53 {} (zone {})", normalise_name(&c.record), describe_zone(&c.zone)),
            Self::Exec { program, spec_dir, .. } => match program.strip_prefix(spec_dir) {
                Ok(rel) if rel.starts_with("..") => format!("exec {}", rel.display()),
                Ok(rel) => format!("exec ./{}", rel.display()),
                Err(_) => format!("exec {}", program.display()),
            },
        }
    }

    /// Weights in range, colors named once, addresses that can be records.
    fn check_targets(&self, targets: &[Target]) -> Result<(), TrafficError> {
        let invalid = |problem: String| TrafficError::InvalidTarget { traffic: self.describe(), problem };
        let mut seen = BTreeSet::new();
        for t in targets {
            if t.color.trim().is_empty() {
                return Err(invalid("a target has an empty color".into()));
            }
            if !seen.insert(t.color.as_str()) {
                return Err(invalid(format!("color {} is given twice", t.color)));
            }
            if t.weight > 100 {
                return Err(invalid(format!("color {} has weight {}, more than 100", t.color, t.weight)));
            }
            if let Some(a) = &t.address
                && (a.is_empty() || a.chars().any(|c| c.is_whitespace() || c.is_control()))
            {
                return Err(invalid(format!("color {} has address {a:?}, which cannot be a DNS record", t.color)));
            }
        }
        Ok(())
    }
}

/// The DNS record type an address makes: `A` for IPv4, `AAAA` for IPv6,
/// `CNAME` for anything else (a hostname).
pub fn record_type(address: &str) -> &'static str {
    if address.parse::<Ipv4Addr>().is_ok() {
        "A"
    } else if address.parse::<Ipv6Addr>().is_ok() {
        "AAAA"
    } else {
        "CNAME"
    }
}

/// A DNS name as Route53 lists it, for comparing: lower case, `\052`-style
/// escapes decoded, exactly one trailing dot.
pub fn normalise_name(name: &str) -> String {
    let name = name.trim().trim_end_matches('.');
    let mut out = String::with_capacity(name.len() + 1);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            let digits: String = chars.clone().take(3).collect();
            if digits.len() == 3
                && digits.chars().all(|d| d.is_ascii_digit())
                && let Ok(code) = u8::from_str_radix(&digits, 8)
            {
                out.push(char::from(code).to_ascii_lowercase());
                chars.nth(2);
                continue;
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out.push('.');
    out
}

/// A hosted zone id, when `zone` is one (`Z0123ABC`, `/hostedzone/Z0123ABC`).
pub fn zone_id(zone: &str) -> Option<&str> {
    let zone = zone.trim();
    let id = zone.strip_prefix("/hostedzone/").unwrap_or(zone);
    (!id.is_empty() && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())).then_some(id)
}

/// A zone as messages name it: its id, or its normalised name.
fn describe_zone(zone: &str) -> String {
    zone_id(zone).map_or_else(|| normalise_name(zone), str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_pick_the_record_type() {
        assert_eq!(record_type("10.0.0.1"), "A");
        assert_eq!(record_type("2001:db8::1"), "AAAA");
        assert_eq!(record_type("::ffff:10.0.0.1"), "AAAA");
        assert_eq!(record_type("lb-123.elb.amazonaws.com"), "CNAME");
        assert_eq!(record_type("10.0.0.1.nip.io"), "CNAME");
        assert_eq!(record_type("10.0.0.256"), "CNAME");
    }

    #[test]
    fn names_compare_with_one_trailing_dot() {
        assert_eq!(normalise_name("app.example.com"), "app.example.com.");
        assert_eq!(normalise_name("App.Example.COM."), "app.example.com.");
        assert_eq!(normalise_name(" app.example.com.. "), "app.example.com.");
        // Route53 lists `*` and other specials as octal escapes.
        assert_eq!(normalise_name("\\052.example.com."), "*.example.com.");
        assert_eq!(normalise_name("a\\05"), "a\\05.");
    }

    #[test]
    fn zone_ids_are_told_from_zone_names() {
        assert_eq!(zone_id("Z0123456789ABCDEFGHIJ"), Some("Z0123456789ABCDEFGHIJ"));
        assert_eq!(zone_id("/hostedzone/Z0123"), Some("Z0123"));
        // moto's ids need not start with Z.
        assert_eq!(zone_id("4FZ7QX0Q2JE5BB1ZQTE0H0"), Some("4FZ7QX0Q2JE5BB1ZQTE0H0"));
        assert_eq!(zone_id("example.com."), None);
        assert_eq!(zone_id("example.com"), None);
        assert_eq!(zone_id("internal"), None);
        assert_eq!(zone_id(""), None);
    }

    #[test]
    fn descriptions_name_the_record_and_zone_or_the_program() {
        let r = Traffic::Route53(Route53Config::new("example.com", "App.example.com"));
        assert_eq!(r.describe(), "route53 app.example.com. (zone example.com.)");
        let r = Traffic::Route53(Route53Config::new("/hostedzone/Z0123", "app.example.com."));
        assert_eq!(r.describe(), "route53 app.example.com. (zone Z0123)");
        let e = Traffic::Exec {
            program: "./traffic.sh".into(),
            spec_dir: ".".into(),
            state_dir: ".".into(),
            environment: "prod".into(),
            record: None,
        };
        assert_eq!(e.describe(), "exec ./traffic.sh");
        let up = Traffic::Exec {
            program: "/spec/../traffic/file-traffic.sh".into(),
            spec_dir: "/spec".into(),
            state_dir: "/spec/.rekube".into(),
            environment: "prod".into(),
            record: None,
        };
        assert_eq!(up.describe(), "exec ../traffic/file-traffic.sh", "as the spec says it");
    }

    #[tokio::test]
    async fn bad_targets_are_refused_before_anything_is_called() {
        // No credentials and no server: only validation can answer.
        let r = Traffic::Route53(Route53Config::new("example.com", "app.example.com"));
        let t = |color: &str, weight| Target { color: color.into(), address: Some("10.0.0.1".into()), weight };
        let err = r.set(&[t("blue", 101)]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "route53 app.example.com. (zone example.com.): color blue has weight 101, more than 100"
        );
        let err = r.set(&[t("blue", 50), t("blue", 50)]).await.unwrap_err();
        assert!(err.to_string().ends_with("color blue is given twice"), "{err}");
        let mut spaced = t("green", 0);
        spaced.address = Some("a b".into());
        let err = r.set(&[spaced]).await.unwrap_err();
        assert!(matches!(err, TrafficError::InvalidTarget { .. }), "{err}");
        r.set(&[]).await.expect("nothing to set is a no-op");
    }
}
