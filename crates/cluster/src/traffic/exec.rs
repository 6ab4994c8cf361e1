//! The exec side of [`Traffic`]: `<program> <command>` with the protocol's
//! request on stdin (see the module docs of `traffic`), run through
//! [`crate::tool`] like exec providers, answers checked before use.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::json;

use super::{TRAFFIC_PROTOCOL, Target, Traffic, TrafficError};
use crate::tool;

/// A target as a program answers it: the weight wide enough to say what is
/// wrong with 300 or -1.
#[derive(Debug, Deserialize)]
struct Answered {
    color: String,
    #[serde(default)]
    address: Option<String>,
    weight: i64,
}

#[derive(Debug, Deserialize)]
struct ReadAnswer {
    targets: Vec<Answered>,
}

/// Runs the program for `command`, with `extra` fields in the request;
/// its answer, which must be a JSON object (empty output counts as `{}`).
async fn call(
    traffic: &Traffic,
    command: &'static str,
    colors: &[String],
    extra: serde_json::Value,
) -> Result<serde_json::Value, TrafficError> {
    let Traffic::Exec { program, spec_dir, state_dir, environment, record } = traffic else {
        unreachable!("exec calls are made for exec traffic only")
    };
    let mut request = json!({
        "protocol": TRAFFIC_PROTOCOL, "command": command, "environment": environment,
        "record": record, "state_dir": state_dir, "colors": colors,
    });
    if let (Some(request), serde_json::Value::Object(extra)) = (request.as_object_mut(), extra) {
        request.extend(extra);
    }
    std::fs::create_dir_all(state_dir).map_err(|cause| TrafficError::Io { path: state_dir.clone(), cause })?;
    let name = program.display().to_string();
    let out = tool::run_ok(&name, &[command.to_string()], spec_dir, Some(request.to_string().as_bytes())).await?;
    let text = out.trim();
    let protocol = |problem: String| TrafficError::Protocol { program: name.clone(), command, problem };
    if text.is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(protocol(format!("not a JSON object: {text:?}"))),
        Err(e) => Err(protocol(format!("{e} in {text:?}"))),
    }
}

pub(super) async fn read(traffic: &Traffic, colors: &[String]) -> Result<Vec<Target>, TrafficError> {
    let answer = call(traffic, "read", colors, json!({})).await?;
    let program = match traffic {
        Traffic::Exec { program, .. } => program.display().to_string(),
        Traffic::Route53(_) => unreachable!("exec calls are made for exec traffic only"),
    };
    check_read(&program, colors, answer)
}

/// The targets of a `read` answer, one per color in the order of `colors`.
fn check_read(program: &str, colors: &[String], answer: serde_json::Value) -> Result<Vec<Target>, TrafficError> {
    let protocol = |problem: String| TrafficError::Protocol { program: program.to_string(), command: "read", problem };
    let answer: ReadAnswer = serde_json::from_value(answer).map_err(|e| protocol(e.to_string()))?;
    let mut seen = BTreeSet::new();
    for t in &answer.targets {
        if !colors.contains(&t.color) {
            return Err(protocol(format!("unknown color {:?} (asked for {})", t.color, colors.join(", "))));
        }
        if !seen.insert(t.color.as_str()) {
            return Err(protocol(format!("color {} is answered twice", t.color)));
        }
        if !(0..=100).contains(&t.weight) {
            return Err(protocol(format!("color {} has weight {}, not a percent (0..=100)", t.color, t.weight)));
        }
    }
    Ok(colors
        .iter()
        .map(|color| match answer.targets.iter().find(|t| &t.color == color) {
            Some(t) => Target {
                color: color.clone(),
                address: t.address.clone().filter(|a| !a.is_empty()),
                weight: u8::try_from(t.weight).expect("checked to be 0..=100"),
            },
            None => Target { color: color.clone(), address: None, weight: 0 },
        })
        .collect())
}

pub(super) async fn set(traffic: &Traffic, targets: &[Target]) -> Result<(), TrafficError> {
    let colors: Vec<String> = targets.iter().map(|t| t.color.clone()).collect();
    call(traffic, "set", &colors, json!({ "targets": targets })).await?;
    Ok(())
}

pub(super) async fn remove(traffic: &Traffic, color: &str) -> Result<(), TrafficError> {
    call(traffic, "remove", &[color.to_string()], json!({ "color": color })).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn colors() -> Vec<String> {
        vec!["blue".into(), "green".into()]
    }

    #[test]
    fn a_read_answer_gives_every_color_in_order() {
        let got =
            check_read("./t.sh", &colors(), json!({"targets": [{"color": "green", "address": "lb", "weight": 30}]}))
                .unwrap();
        assert_eq!(
            got,
            vec![
                Target { color: "blue".into(), address: None, weight: 0 },
                Target { color: "green".into(), address: Some("lb".into()), weight: 30 },
            ]
        );
    }

    #[test]
    fn bad_read_answers_name_the_program_and_the_problem() {
        let bad = |answer| check_read("./t.sh", &colors(), answer).unwrap_err().to_string();
        assert_eq!(
            bad(json!({"targets": [{"color": "red", "address": null, "weight": 1}]})),
            "traffic program ./t.sh answered `read` with something that is not the protocol's JSON: \
             unknown color \"red\" (asked for blue, green)"
        );
        assert!(
            bad(json!({"targets": [{"color": "blue", "weight": 300}]}))
                .ends_with("color blue has weight 300, not a percent (0..=100)")
        );
        assert!(bad(json!({"targets": [{"color": "blue", "weight": -1}]})).contains("weight -1"));
        assert!(bad(json!({"weights": []})).contains("missing field `targets`"));
        let twice = json!({"targets": [{"color": "blue", "weight": 1}, {"color": "blue", "weight": 2}]});
        assert!(bad(twice).ends_with("color blue is answered twice"));
    }
}
