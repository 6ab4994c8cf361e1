//! Route53's REST/XML API (2013-04-01), the four calls the weighted split
//! needs: ListHostedZonesByName, ListResourceRecordSets,
//! ChangeResourceRecordSets and GetChange, each signed with SigV4. No AWS SDK:
//! these are small, and the SDK would bring its own HTTP and TLS stacks.

use std::fmt::Write as _;
use std::time::SystemTime;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use serde::Deserialize;

use super::{
    ROUTE53_ENDPOINT, ROUTE53_REGION, Route53Config, SYNC_DEADLINE, SYNC_POLL, Target, Traffic, TrafficError,
    normalise_name, record_type, zone_id,
};

/// The API version every path starts with.
const API: &str = "/2013-04-01";

/// The XML namespace of request bodies.
const XMLNS: &str = "https://route53.amazonaws.com/doc/2013-04-01/";

/// The record types a color's record can have.
const TYPES: [&str; 3] = ["A", "AAAA", "CNAME"];

/// AWS credentials to sign Route53 requests with.
#[derive(Clone, PartialEq, Eq)]
pub struct AwsCredentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl AwsCredentials {
    /// `$AWS_ACCESS_KEY_ID`, `$AWS_SECRET_ACCESS_KEY` and
    /// `$AWS_SESSION_TOKEN`; `None` unless both keys are set.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Self::from_env`] with another source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        Some(Self {
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            session_token: var("AWS_SESSION_TOKEN"),
        })
    }

    fn is_complete(&self) -> bool {
        !self.access_key_id.trim().is_empty() && !self.secret_access_key.trim().is_empty()
    }
}

/// The endpoint: configured, else the first of `$AWS_ENDPOINT_URL_ROUTE_53`,
/// `$AWS_ENDPOINT_URL`, `$AWS_ENDPOINT` that is set, else AWS.
fn endpoint(config: &Route53Config, lookup: impl Fn(&str) -> Option<String>) -> String {
    config
        .endpoint
        .clone()
        .or_else(|| {
            ["AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"]
                .into_iter()
                .find_map(|name| lookup(name).filter(|v| !v.trim().is_empty()))
        })
        .unwrap_or_else(|| ROUTE53_ENDPOINT.to_string())
        .trim()
        .trim_end_matches('/')
        .to_string()
}

/// A signed Route53 client for one configuration.
pub(super) struct Client<'a> {
    config: &'a Route53Config,
    /// [`Traffic::describe`], for messages.
    traffic: String,
    /// The record name, normalised.
    record: String,
    endpoint: String,
    region: String,
    credentials: aws_credential_types::Credentials,
    http: reqwest::Client,
}

impl<'a> Client<'a> {
    /// Checks the endpoint and finds credentials; no request yet.
    pub(super) fn new(config: &'a Route53Config) -> Result<Self, TrafficError> {
        let traffic = Traffic::Route53(config.clone()).describe();
        let endpoint = endpoint(config, |name| std::env::var(name).ok());
        let valid = reqwest::Url::parse(&endpoint)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty()));
        if !valid {
            return Err(TrafficError::InvalidEndpoint { traffic, endpoint });
        }
        let Some(creds) =
            config.credentials.clone().or_else(AwsCredentials::from_env).filter(AwsCredentials::is_complete)
        else {
            return Err(TrafficError::MissingCredentials { traffic });
        };
        let credentials = aws_credential_types::Credentials::new(
            creds.access_key_id,
            creds.secret_access_key,
            creds.session_token,
            None,
            "rekube",
        );
        // reqwest is built without a TLS provider; rekube uses ring everywhere.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .map_err(|cause| TrafficError::Unreachable {
                traffic: traffic.clone(),
                action: "connect",
                endpoint: endpoint.clone(),
                cause,
            })?;
        let region = config.region.clone().filter(|r| !r.trim().is_empty()).unwrap_or_else(|| ROUTE53_REGION.into());
        Ok(Self { config, traffic, record: normalise_name(&config.record), endpoint, region, credentials, http })
    }

    /// One signed call; the body of a 2xx answer, else the AWS error.
    async fn call(&self, action: &'static str, path: &str, body: Option<String>) -> Result<String, TrafficError> {
        let url = format!("{}{path}", self.endpoint);
        let method = if body.is_some() { reqwest::Method::POST } else { reqwest::Method::GET };
        let content_type = body.as_ref().map(|_| ("content-type", "application/xml"));
        let signing = |cause: Box<dyn std::error::Error + Send + Sync>| TrafficError::Signing {
            traffic: self.traffic.clone(),
            cause,
        };
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("route53")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| signing(e.into()))?
            .into();
        let signable = SignableRequest::new(
            method.as_str(),
            url.as_str(),
            content_type.into_iter(),
            SignableBody::Bytes(body.as_deref().unwrap_or_default().as_bytes()),
        )
        .map_err(|e| signing(e.into()))?;
        let (instructions, _signature) = sign(signable, &params).map_err(|e| signing(e.into()))?.into_parts();
        let mut request = self.http.request(method, &url);
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        if let (Some((name, value)), Some(body)) = (content_type, body) {
            request = request.header(name, value).body(body);
        }
        let unreachable = |cause| TrafficError::Unreachable {
            traffic: self.traffic.clone(),
            action,
            endpoint: self.endpoint.clone(),
            cause,
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let text = response.text().await.map_err(unreachable)?;
        if !status.is_success() {
            let (code, message) = aws_error(&text);
            return Err(TrafficError::Api {
                traffic: self.traffic.clone(),
                action,
                status: status.as_u16(),
                code,
                message,
            });
        }
        Ok(text)
    }

    fn parse<T: serde::de::DeserializeOwned>(&self, action: &'static str, text: &str) -> Result<T, TrafficError> {
        quick_xml::de::from_str(text).map_err(|e| TrafficError::Response {
            traffic: self.traffic.clone(),
            action,
            problem: format!("{e} in {:?}", first_chars(text, 300)),
        })
    }

    /// The hosted zone's id: the configured one, or the one zone named so.
    async fn zone(&self) -> Result<String, TrafficError> {
        if let Some(id) = zone_id(&self.config.zone) {
            return Ok(id.to_string());
        }
        let name = normalise_name(&self.config.zone);
        let mut ids = Vec::new();
        let mut next_id: Option<String> = None;
        loop {
            let mut path = format!("{API}/hostedzonesbyname?dnsname={}&maxitems=100", query(&name));
            if let Some(id) = &next_id {
                write!(path, "&hostedzoneid={}", query(id)).expect("writing to a String");
            }
            let text = self.call("ListHostedZonesByName", &path, None).await?;
            let page: ZonesByName = self.parse("ListHostedZonesByName", &text)?;
            // Zones come sorted from `dnsname` on: the ones named so first.
            let before = ids.len();
            for zone in page.hosted_zones.zones {
                if normalise_name(&zone.name) == name {
                    ids.push(zone.id.trim_start_matches("/hostedzone/").to_string());
                }
            }
            let more_of_them = ids.len() > before
                && page.is_truncated
                && page.next_dns_name.as_deref().is_some_and(|n| normalise_name(n) == name);
            match page.next_hosted_zone_id {
                Some(id) if more_of_them => next_id = Some(id),
                _ => break,
            }
        }
        match ids.len() {
            0 => Err(TrafficError::ZoneNotFound { zone: name }),
            1 => Ok(ids.remove(0)),
            _ => Err(TrafficError::ZoneAmbiguous { zone: name, ids }),
        }
    }

    /// The record's A, AAAA and CNAME record sets that have a
    /// `SetIdentifier` (whatever the color).
    async fn records(&self, zone: &str) -> Result<Vec<RecordSet>, TrafficError> {
        let mut found = Vec::new();
        let mut start = (self.record.clone(), None::<String>, None::<String>);
        loop {
            let mut path = format!("{API}/hostedzone/{}/rrset?name={}&maxitems=300", query(zone), query(&start.0));
            if let Some(kind) = &start.1 {
                write!(path, "&type={}", query(kind)).expect("writing to a String");
            }
            if let Some(id) = &start.2 {
                write!(path, "&identifier={}", query(id)).expect("writing to a String");
            }
            let text = self.call("ListResourceRecordSets", &path, None).await?;
            let page: RecordSets = self.parse("ListResourceRecordSets", &text)?;
            // The listing starts at the name; sorted by name, so the first
            // other name ends the record's sets.
            let mut past = false;
            for set in page.resource_record_sets.sets {
                if normalise_name(&set.name) != self.record {
                    past = true;
                    break;
                }
                if set.set_identifier.is_some() && TYPES.contains(&set.kind.as_str()) {
                    found.push(set);
                }
            }
            match page.next_record_name {
                Some(name) if page.is_truncated && !past => {
                    start = (name, page.next_record_type, page.next_record_identifier);
                }
                _ => break,
            }
        }
        found.sort_by_key(|s| TYPES.iter().position(|t| *t == s.kind));
        Ok(found)
    }

    /// The color's record sets (A first, then AAAA, then CNAME).
    fn of<'r>(sets: &'r [RecordSet], color: &str) -> Vec<&'r RecordSet> {
        sets.iter().filter(|s| s.set_identifier.as_deref() == Some(color)).collect()
    }

    fn weighted(&self, set: &RecordSet) -> Result<u8, TrafficError> {
        match set.weight {
            Some(w) if w <= 100 => Ok(u8::try_from(w).expect("at most 100")),
            Some(w) => Err(self.unmanaged(format!(
                "the {} record of color {} has weight {w}; rekube keeps weights in percent (0..=100)",
                set.kind,
                set.set_identifier.as_deref().unwrap_or_default()
            ))),
            None => Err(self.unmanaged(format!(
                "the {} record of color {} is not a weighted record; rekube only manages weighted ones",
                set.kind,
                set.set_identifier.as_deref().unwrap_or_default()
            ))),
        }
    }

    fn unmanaged(&self, problem: String) -> TrafficError {
        TrafficError::Unmanaged { traffic: self.traffic.clone(), problem }
    }

    pub(super) async fn read(&self, colors: &[String]) -> Result<Vec<Target>, TrafficError> {
        let zone = self.zone().await?;
        let sets = self.records(&zone).await?;
        colors
            .iter()
            .map(|color| {
                Ok(match Self::of(&sets, color).first() {
                    Some(set) => Target { color: color.clone(), address: set.value(), weight: self.weighted(set)? },
                    None => Target { color: color.clone(), address: None, weight: 0 },
                })
            })
            .collect()
    }

    pub(super) async fn set(&self, targets: &[Target]) -> Result<(), TrafficError> {
        let zone = self.zone().await?;
        let sets = self.records(&zone).await?;
        let mut deletes = Vec::new();
        let mut upserts = Vec::new();
        for target in targets {
            let current = Self::of(&sets, &target.color);
            for set in &current {
                self.weighted(set)?;
            }
            match &target.address {
                Some(address) => {
                    let kind = record_type(address);
                    // A color that changes type (IP to hostname) loses the
                    // old set in the same batch, so the name is never empty.
                    deletes.extend(current.iter().filter(|s| s.kind != kind).map(|s| (*s).clone()));
                    upserts.push(RecordSet {
                        name: self.record.clone(),
                        kind: kind.into(),
                        set_identifier: Some(target.color.clone()),
                        weight: Some(target.weight.into()),
                        ttl: Some(self.config.ttl),
                        resource_records: Values { records: vec![Value { value: address.clone() }] },
                        alias_target: None,
                        health_check_id: current
                            .iter()
                            .find(|s| s.kind == kind)
                            .and_then(|s| s.health_check_id.clone()),
                    });
                }
                None if current.is_empty() => {
                    return Err(TrafficError::InvalidTarget {
                        traffic: self.traffic.clone(),
                        problem: format!("color {} has no record yet, so it needs an address", target.color),
                    });
                }
                None => upserts.extend(current.iter().map(|s| {
                    let mut set = (*s).clone();
                    set.weight = Some(target.weight.into());
                    if set.alias_target.is_none() {
                        set.ttl = Some(self.config.ttl);
                    }
                    set
                })),
            }
        }
        let comment = targets.iter().fold("rekube: set weights".to_string(), |mut c, t| {
            write!(c, " {}={}", t.color, t.weight).expect("writing to a String");
            c
        });
        let changes: Vec<_> =
            deletes.iter().map(|s| ("DELETE", s)).chain(upserts.iter().map(|s| ("UPSERT", s))).collect();
        self.change(&zone, &comment, &changes).await
    }

    pub(super) async fn remove(&self, color: &str) -> Result<(), TrafficError> {
        let zone = self.zone().await?;
        let sets = self.records(&zone).await?;
        let gone = Self::of(&sets, color);
        if gone.is_empty() {
            return Ok(());
        }
        let changes: Vec<_> = gone.into_iter().map(|s| ("DELETE", s)).collect();
        self.change(&zone, &format!("rekube: remove {color}"), &changes).await
    }

    /// One ChangeBatch, then waits until it is in sync.
    async fn change(&self, zone: &str, comment: &str, changes: &[(&str, &RecordSet)]) -> Result<(), TrafficError> {
        let body = change_batch_xml(comment, changes);
        let path = format!("{API}/hostedzone/{}/rrset", query(zone));
        let text = self.call("ChangeResourceRecordSets", &path, Some(body)).await?;
        let info: ChangeResponse = self.parse("ChangeResourceRecordSets", &text)?;
        self.wait(info.change_info.id.trim_start_matches("/change/")).await
    }

    /// Polls GetChange until INSYNC (even when the change says so already:
    /// asking once costs little and proves the change is known).
    async fn wait(&self, change: &str) -> Result<(), TrafficError> {
        let began = tokio::time::Instant::now();
        loop {
            let text = self.call("GetChange", &format!("{API}/change/{}", query(change)), None).await?;
            let info: ChangeResponse = self.parse("GetChange", &text)?;
            if info.change_info.status.eq_ignore_ascii_case("INSYNC") {
                return Ok(());
            }
            if began.elapsed() >= SYNC_DEADLINE {
                return Err(TrafficError::NotInSync {
                    traffic: self.traffic.clone(),
                    change: change.to_string(),
                    waited: began.elapsed(),
                });
            }
            tokio::time::sleep(SYNC_POLL).await;
        }
    }
}

/// A query-string value, percent-encoded as SigV4 canonicalises it.
fn query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            write!(out, "%{b:02X}").expect("writing to a String");
        }
    }
    out
}

fn first_chars(text: &str, n: usize) -> &str {
    text.char_indices().nth(n).map_or(text, |(i, _)| &text[..i])
}

/// AWS's error Code and Message from an error body: `<ErrorResponse>`, or
/// `<InvalidChangeBatch>` with its `<Messages>`; the text itself otherwise.
fn aws_error(text: &str) -> (String, String) {
    let (code, message) = aws_error_raw(text);
    (code, redact(&message))
}

/// AWS's SignatureDoesNotMatch message quotes the canonical request and the
/// string to sign, which carry the session token: everything from there on
/// is cut.
fn redact(message: &str) -> String {
    match message.find("The Canonical String") {
        Some(i) => format!("{}(the canonical request AWS quoted is left out)", &message[..i]),
        None => message.to_string(),
    }
}

fn aws_error_raw(text: &str) -> (String, String) {
    match quick_xml::de::from_str::<ErrorBody>(text) {
        Ok(ErrorBody { error: Some(e), .. }) => {
            (e.code.unwrap_or_else(|| "(no code)".into()), e.message.unwrap_or_else(|| "(no message)".into()))
        }
        Ok(ErrorBody { messages: Some(m), .. }) => ("InvalidChangeBatch".into(), m.messages.join("; ")),
        _ if text.trim().is_empty() => ("(no code)".into(), "(empty body)".into()),
        _ => ("(no code)".into(), first_chars(text.trim(), 300).to_string()),
    }
}

/// A ChangeResourceRecordSets request body.
fn change_batch_xml(comment: &str, changes: &[(&str, &RecordSet)]) -> String {
    let mut x = String::new();
    x.push_str(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    write!(x, r#"<ChangeResourceRecordSetsRequest xmlns="{XMLNS}"><ChangeBatch>"#).expect("writing to a String");
    // Route53 allows 256 characters of comment.
    element(&mut x, "Comment", first_chars(comment, 256));
    x.push_str("<Changes>");
    for (action, set) in changes {
        x.push_str("<Change>");
        element(&mut x, "Action", action);
        set.write_xml(&mut x);
        x.push_str("</Change>");
    }
    x.push_str("</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>");
    x
}

/// `<name>text</name>`, the text escaped.
fn element(out: &mut String, name: &str, text: &str) {
    write!(out, "<{name}>{}</{name}>", quick_xml::escape::escape(text)).expect("writing to a String");
}

/// ListHostedZonesByName's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ZonesByName {
    #[serde(default)]
    hosted_zones: ZoneList,
    #[serde(default)]
    is_truncated: bool,
    #[serde(rename = "NextDNSName")]
    next_dns_name: Option<String>,
    next_hosted_zone_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ZoneList {
    #[serde(rename = "HostedZone", default)]
    zones: Vec<Zone>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Zone {
    id: String,
    name: String,
}

/// ListResourceRecordSets' answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordSets {
    #[serde(default)]
    resource_record_sets: RecordSetList,
    #[serde(default)]
    is_truncated: bool,
    next_record_name: Option<String>,
    next_record_type: Option<String>,
    next_record_identifier: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct RecordSetList {
    #[serde(rename = "ResourceRecordSet", default)]
    sets: Vec<RecordSet>,
}

/// One resource record set, with every field a DELETE must repeat.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RecordSet {
    name: String,
    #[serde(rename = "Type")]
    kind: String,
    set_identifier: Option<String>,
    weight: Option<u64>,
    #[serde(rename = "TTL")]
    ttl: Option<u32>,
    #[serde(default)]
    resource_records: Values,
    alias_target: Option<Alias>,
    health_check_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
struct Values {
    #[serde(rename = "ResourceRecord", default)]
    records: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Value {
    #[serde(rename = "Value")]
    value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Alias {
    hosted_zone_id: String,
    #[serde(rename = "DNSName")]
    dns_name: String,
    evaluate_target_health: bool,
}

impl RecordSet {
    /// What the record points at: its (first) value, or its alias target.
    fn value(&self) -> Option<String> {
        match &self.alias_target {
            Some(alias) => Some(alias.dns_name.clone()),
            None => self.resource_records.records.first().map(|v| v.value.clone()),
        }
    }

    /// `<ResourceRecordSet>`, elements in the order Route53's schema wants.
    fn write_xml(&self, x: &mut String) {
        x.push_str("<ResourceRecordSet>");
        // Without the trailing dot: Route53 takes names as absolute either
        // way, and moto only matches a DELETE to an earlier change when the
        // names are written alike.
        element(x, "Name", normalise_name(&self.name).trim_end_matches('.'));
        element(x, "Type", &self.kind);
        if let Some(id) = &self.set_identifier {
            element(x, "SetIdentifier", id);
        }
        if let Some(w) = self.weight {
            element(x, "Weight", &w.to_string());
        }
        if let Some(ttl) = self.ttl {
            element(x, "TTL", &ttl.to_string());
        }
        if !self.resource_records.records.is_empty() {
            x.push_str("<ResourceRecords>");
            for v in &self.resource_records.records {
                x.push_str("<ResourceRecord>");
                element(x, "Value", &v.value);
                x.push_str("</ResourceRecord>");
            }
            x.push_str("</ResourceRecords>");
        }
        if let Some(alias) = &self.alias_target {
            x.push_str("<AliasTarget>");
            element(x, "HostedZoneId", &alias.hosted_zone_id);
            element(x, "DNSName", &alias.dns_name);
            element(x, "EvaluateTargetHealth", if alias.evaluate_target_health { "true" } else { "false" });
            x.push_str("</AliasTarget>");
        }
        if let Some(id) = &self.health_check_id {
            element(x, "HealthCheckId", id);
        }
        x.push_str("</ResourceRecordSet>");
    }
}

/// ChangeResourceRecordSets' and GetChange's answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeResponse {
    change_info: ChangeInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ChangeInfo {
    id: String,
    status: String,
}

/// An error answer: `<ErrorResponse><Error>` or `<InvalidChangeBatch>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    error: Option<ErrorDetail>,
    messages: Option<Messages>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorDetail {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Messages {
    #[serde(rename = "Message", default)]
    messages: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weighted(kind: &str, color: &str, weight: u64, value: &str) -> RecordSet {
        RecordSet {
            name: "app.example.com.".into(),
            kind: kind.into(),
            set_identifier: Some(color.into()),
            weight: Some(weight),
            ttl: Some(60),
            resource_records: Values { records: vec![Value { value: value.into() }] },
            alias_target: None,
            health_check_id: None,
        }
    }

    #[test]
    fn a_change_batch_is_route53_xml_with_its_text_escaped() {
        let mut odd = weighted("CNAME", "blue<&>\"'", 100, "lb.example.com");
        odd.name = "\\052.example.com.".into();
        let green = weighted("A", "green", 0, "10.0.0.2");
        let xml = change_batch_xml("rekube: a < b & c", &[("DELETE", &green), ("UPSERT", &odd)]);
        assert_eq!(
            xml,
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8"?>"#,
                r#"<ChangeResourceRecordSetsRequest xmlns="https://route53.amazonaws.com/doc/2013-04-01/">"#,
                "<ChangeBatch><Comment>rekube: a &lt; b &amp; c</Comment><Changes>",
                "<Change><Action>DELETE</Action><ResourceRecordSet><Name>app.example.com</Name><Type>A</Type>",
                "<SetIdentifier>green</SetIdentifier><Weight>0</Weight><TTL>60</TTL>",
                "<ResourceRecords><ResourceRecord><Value>10.0.0.2</Value></ResourceRecord></ResourceRecords>",
                "</ResourceRecordSet></Change>",
                "<Change><Action>UPSERT</Action><ResourceRecordSet><Name>*.example.com</Name><Type>CNAME</Type>",
                "<SetIdentifier>blue&lt;&amp;&gt;&quot;&apos;</SetIdentifier><Weight>100</Weight><TTL>60</TTL>",
                "<ResourceRecords><ResourceRecord><Value>lb.example.com</Value></ResourceRecord></ResourceRecords>",
                "</ResourceRecordSet></Change>",
                "</Changes></ChangeBatch></ChangeResourceRecordSetsRequest>",
            )
        );
        // What is written reads back as the same record set.
        let start = xml.find("<ResourceRecordSet>").unwrap();
        let end = xml.find("</ResourceRecordSet>").unwrap() + "</ResourceRecordSet>".len();
        let back: RecordSet = quick_xml::de::from_str(&xml[start..end]).unwrap();
        assert_eq!(
            RecordSet { name: "app.example.com".into(), ..back },
            RecordSet { name: "app.example.com".into(), ..green }
        );
    }

    #[test]
    fn alias_records_are_written_back_exactly() {
        let mut alias = weighted("A", "blue", 10, "x");
        alias.ttl = None;
        alias.resource_records = Values::default();
        alias.alias_target = Some(Alias {
            hosted_zone_id: "Z35SXDOTRQ7X7K".into(),
            dns_name: "lb-1.us-east-1.elb.amazonaws.com.".into(),
            evaluate_target_health: true,
        });
        alias.health_check_id = Some("hc-1".into());
        let mut x = String::new();
        alias.write_xml(&mut x);
        assert_eq!(
            x,
            concat!(
                "<ResourceRecordSet><Name>app.example.com</Name><Type>A</Type><SetIdentifier>blue</SetIdentifier>",
                "<Weight>10</Weight><AliasTarget><HostedZoneId>Z35SXDOTRQ7X7K</HostedZoneId>",
                "<DNSName>lb-1.us-east-1.elb.amazonaws.com.</DNSName><EvaluateTargetHealth>true</EvaluateTargetHealth>",
                "</AliasTarget><HealthCheckId>hc-1</HealthCheckId></ResourceRecordSet>",
            )
        );
        assert_eq!(alias.value().as_deref(), Some("lb-1.us-east-1.elb.amazonaws.com."));
    }

    #[test]
    fn weighted_record_sets_parse_from_a_listing() {
        let text = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListResourceRecordSetsResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
  <ResourceRecordSets>
    <ResourceRecordSet>
      <Name>app.example.com.</Name><Type>A</Type><SetIdentifier>prod-blue</SetIdentifier>
      <Weight>70</Weight><TTL>60</TTL>
      <ResourceRecords><ResourceRecord><Value>10.0.0.1</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet>
    <ResourceRecordSet>
      <Name>app.example.com.</Name><Type>CNAME</Type><SetIdentifier>prod-green</SetIdentifier>
      <Weight>30</Weight><TTL>300</TTL>
      <ResourceRecords><ResourceRecord><Value>lb.example.net</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet>
    <ResourceRecordSet>
      <Name>www.example.com.</Name><Type>A</Type><TTL>60</TTL>
      <ResourceRecords><ResourceRecord><Value>10.0.0.9</Value></ResourceRecord>
      <ResourceRecord><Value>10.0.0.10</Value></ResourceRecord></ResourceRecords>
    </ResourceRecordSet>
  </ResourceRecordSets>
  <IsTruncated>true</IsTruncated><NextRecordName>x.example.com.</NextRecordName><NextRecordType>A</NextRecordType>
  <MaxItems>3</MaxItems>
</ListResourceRecordSetsResponse>"#;
        let page: RecordSets = quick_xml::de::from_str(text).unwrap();
        let sets = &page.resource_record_sets.sets;
        assert_eq!(sets.len(), 3);
        assert_eq!(sets[0], weighted("A", "prod-blue", 70, "10.0.0.1"));
        assert_eq!(sets[1].value().as_deref(), Some("lb.example.net"));
        assert_eq!((sets[1].weight, sets[1].ttl), (Some(30), Some(300)));
        assert_eq!(sets[2].set_identifier, None);
        assert_eq!(sets[2].resource_records.records.len(), 2);
        assert!(page.is_truncated);
        assert_eq!(page.next_record_name.as_deref(), Some("x.example.com."));
        assert_eq!(page.next_record_identifier, None);

        let empty: RecordSets = quick_xml::de::from_str(
            "<ListResourceRecordSetsResponse><ResourceRecordSets/><IsTruncated>false</IsTruncated>\
             </ListResourceRecordSetsResponse>",
        )
        .unwrap();
        assert!(empty.resource_record_sets.sets.is_empty() && !empty.is_truncated);
    }

    #[test]
    fn zones_and_changes_parse() {
        let zones: ZonesByName = quick_xml::de::from_str(
            r#"<ListHostedZonesByNameResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<HostedZones><HostedZone><Id>/hostedzone/Z1</Id><Name>example.com.</Name><CallerReference>r</CallerReference>
<Config><PrivateZone>false</PrivateZone></Config><ResourceRecordSetCount>2</ResourceRecordSetCount></HostedZone>
</HostedZones><DNSName>example.com.</DNSName><IsTruncated>false</IsTruncated><MaxItems>100</MaxItems>
</ListHostedZonesByNameResponse>"#,
        )
        .unwrap();
        assert_eq!(zones.hosted_zones.zones.len(), 1);
        assert_eq!(
            (zones.hosted_zones.zones[0].id.as_str(), zones.hosted_zones.zones[0].name.as_str()),
            ("/hostedzone/Z1", "example.com.")
        );
        let change: ChangeResponse = quick_xml::de::from_str(
            "<GetChangeResponse><ChangeInfo><Id>/change/C2</Id><Status>PENDING</Status>\
             <SubmittedAt>2026-01-01T00:00:00Z</SubmittedAt></ChangeInfo></GetChangeResponse>",
        )
        .unwrap();
        assert_eq!((change.change_info.id.as_str(), change.change_info.status.as_str()), ("/change/C2", "PENDING"));
    }

    #[test]
    fn a_signature_error_never_quotes_the_signed_request() {
        let body = "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request \
                    signature we calculated does not match. The Canonical String for this request should have been \
                    'POST x-amz-security-token:SECRETTOKEN'</Message></Error></ErrorResponse>";
        let (code, message) = aws_error(body);
        assert_eq!(code, "SignatureDoesNotMatch");
        assert!(!message.contains("SECRETTOKEN") && message.contains("does not match"), "{message}");
    }

    #[test]
    fn aws_errors_give_their_code_and_message() {
        let e = r#"<?xml version="1.0"?><ErrorResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">
<Error><Type>Sender</Type><Code>NoSuchHostedZone</Code><Message>No hosted zone found with ID: Z9</Message></Error>
<RequestId>r</RequestId></ErrorResponse>"#;
        assert_eq!(aws_error(e), ("NoSuchHostedZone".into(), "No hosted zone found with ID: Z9".into()));
        let batch = "<InvalidChangeBatch><Messages><Message>Tried to delete a record that does not exist</Message>\
                     <Message>and another</Message></Messages><RequestId>r</RequestId></InvalidChangeBatch>";
        assert_eq!(
            aws_error(batch),
            ("InvalidChangeBatch".into(), "Tried to delete a record that does not exist; and another".into())
        );
        assert_eq!(aws_error("<html>Bad Gateway</html>").1, "<html>Bad Gateway</html>");
        assert_eq!(aws_error(""), ("(no code)".into(), "(empty body)".into()));
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(query("app.example.com."), "app.example.com.");
        assert_eq!(query("*.a b+c/é"), "%2A.a%20b%2Bc%2F%C3%A9");
    }

    #[test]
    fn the_endpoint_comes_from_config_then_the_environment() {
        let mut c = Route53Config::new("example.com", "app.example.com");
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(endpoint(&c, env(&[])), "https://route53.amazonaws.com");
        assert_eq!(endpoint(&c, env(&[("AWS_ENDPOINT", "http://e:1")])), "http://e:1");
        assert_eq!(
            endpoint(&c, env(&[("AWS_ENDPOINT", "http://e:1"), ("AWS_ENDPOINT_URL", "http://u:2/")])),
            "http://u:2"
        );
        let all = env(&[
            ("AWS_ENDPOINT", "http://e:1"),
            ("AWS_ENDPOINT_URL", "http://u:2"),
            ("AWS_ENDPOINT_URL_ROUTE_53", "http://r:3"),
        ]);
        assert_eq!(endpoint(&c, all), "http://r:3");
        c.endpoint = Some("http://c:4".into());
        assert_eq!(endpoint(&c, all), "http://c:4");
    }

    #[test]
    fn credentials_need_both_keys_and_hide_the_secret() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            AwsCredentials::from_lookup(|k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string()))
        };
        assert_eq!(vars(&[]), None);
        assert_eq!(vars(&[("AWS_ACCESS_KEY_ID", "AKID")]), None);
        assert_eq!(vars(&[("AWS_ACCESS_KEY_ID", "AKID"), ("AWS_SECRET_ACCESS_KEY", " ")]), None);
        let c = vars(&[
            ("AWS_ACCESS_KEY_ID", "AKID"),
            ("AWS_SECRET_ACCESS_KEY", "s3cr3t"),
            ("AWS_SESSION_TOKEN", "FwoGZX"),
        ])
        .unwrap();
        assert_eq!(c.session_token.as_deref(), Some("FwoGZX"));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t") && !shown.contains("FwoGZX"), "{shown}");
    }
}
