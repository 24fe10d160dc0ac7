//! The OpenRPC document (`rpc.discover`), generated from the method table
//! itself: the `#[rpc]` traits of this crate, read from this crate's source
//! compiled into the binary. Each method's name comes from its `#[method]`
//! (or `#[subscription]`) attribute and its trait's namespace, its summary
//! from its doc comment, its parameters and result from its signature, and
//! its errors from the doc line that starts with `Errors:` plus the codes
//! any method may answer. Nothing is written twice, so the document cannot
//! drift from what the server serves (a node refuses to start if it does).

use serde_json::{Value, json};

/// This crate's source: the traits the server implements.
const SOURCE: &str = include_str!("lib.rs");

/// Codes any method may answer (bad parameters, rate limit, storage).
pub const COMMON_ERRORS: [i32; 3] = [
    crate::codes::INVALID_PARAMS,
    crate::codes::RATE_LIMITED,
    crate::codes::INTERNAL,
];

/// One method of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Method {
    /// Full name, with its namespace (`proctor_head`).
    pub name: String,
    pub summary: String,
    /// `(name, Rust type)` in order.
    pub params: Vec<(String, String)>,
    /// The Rust type of the result (of each item, for a subscription).
    pub result: String,
    /// Codes listed on the method's `Errors:` line.
    pub errors: Vec<i32>,
}

/// Every method and subscription of the `#[rpc]` traits in `source`, with
/// the unsubscribe method of each subscription.
pub fn methods_in(source: &str) -> Vec<Method> {
    let mut out = Vec::new();
    let mut namespace: Option<String> = None;
    let mut doc: Vec<String> = Vec::new();
    let mut pending: Option<(String, Option<(String, String)>)> = None;
    let mut signature = String::new();
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with("#[rpc(") {
            namespace = quoted_after(t, "namespace = ");
            doc.clear();
            continue;
        }
        let Some(ns) = &namespace else { continue };
        if line.starts_with('}') {
            namespace = None;
            continue;
        }
        if let Some(d) = t.strip_prefix("///") {
            doc.push(d.trim().to_string());
        } else if t.starts_with("#[method(") {
            pending = quoted_after(t, "name = ").map(|n| (format!("{ns}_{n}"), None));
        } else if t.starts_with("#[subscription(") {
            let name = quoted_after(t, "name = ");
            let unsub = quoted_after(t, "unsubscribe = ");
            let item = t
                .split("item = ")
                .nth(1)
                .map(|s| s.trim_end_matches(")]").trim().to_string());
            if let (Some(n), Some(u), Some(i)) = (name, unsub, item) {
                pending = Some((format!("{ns}_{n}"), Some((format!("{ns}_{u}"), i))));
            }
        } else if pending.is_some() && (t.starts_with("async fn") || !signature.is_empty()) {
            signature.push_str(t);
            signature.push(' ');
            if t.ends_with(';') {
                let (name, sub) = pending.take().expect("checked above");
                let (params, result) = parse_signature(&signature);
                let summary = doc
                    .iter()
                    .take_while(|l| !l.starts_with("Errors:"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(" ");
                let errors = doc
                    .iter()
                    .find_map(|l| l.strip_prefix("Errors:"))
                    .map(codes_in)
                    .unwrap_or_default();
                match sub {
                    None => out.push(Method {
                        name,
                        summary,
                        params,
                        result,
                        errors,
                    }),
                    Some((unsubscribe, item)) => {
                        out.push(Method {
                            name,
                            summary,
                            params,
                            result: item,
                            errors,
                        });
                        out.push(Method {
                            name: unsubscribe,
                            summary: "Ends a subscription.".into(),
                            params: vec![("subscription".into(), "String".into())],
                            result: "bool".into(),
                            errors: vec![],
                        });
                    }
                }
                signature.clear();
                doc.clear();
            }
        } else if t.is_empty() {
            doc.clear();
        }
    }
    out
}

/// The methods of this crate's API.
pub fn methods() -> Vec<Method> {
    methods_in(SOURCE)
}

/// Whether `v` is a value of the API type `t` (types this cannot check, such
/// as structures, pass).
fn fits(t: &str, v: &Value) -> bool {
    use proctor_primitives::{Address, Hash, PublicKey};
    let t = t.trim();
    if let Some(inner) = t.strip_prefix("Option<").and_then(|s| s.strip_suffix('>')) {
        return v.is_null() || fits(inner, v);
    }
    match last_segment(t) {
        "String" => v.is_string(),
        "u64" | "u32" => v.as_u64().is_some(),
        "bool" => v.is_boolean(),
        "Hash" => serde_json::from_value::<Hash>(v.clone()).is_ok(),
        "PublicKey" => serde_json::from_value::<PublicKey>(v.clone()).is_ok(),
        "Address" => serde_json::from_value::<Address>(v.clone()).is_ok(),
        _ => true,
    }
}

/// The name of the first parameter of `method` that `params` (the raw JSON
/// of a request's params: an array by position, an object by name, or
/// none) lacks or gives a value of the wrong type, as `rpc.discover` names
/// it. Used to say which input failed when the server's own typed parsing
/// refuses a request.
pub fn failing_input(method: &Method, params: Option<&str>) -> Option<String> {
    let given: Value = match params {
        Some(text) => serde_json::from_str(text).ok()?,
        None => Value::Null,
    };
    method
        .params
        .iter()
        .enumerate()
        .find(|(i, (name, t))| {
            let v = match &given {
                Value::Array(a) => a.get(*i),
                Value::Object(o) => o.get(name),
                _ => None,
            };
            !fits(t, v.unwrap_or(&Value::Null))
        })
        .map(|(_, (name, _))| name.clone())
}

/// The text in quotes after `key` on `line`.
fn quoted_after(line: &str, key: &str) -> Option<String> {
    let rest = line.split(key).nth(1)?.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// Codes on an `Errors:` line: numbers before the first `;` or `.`.
fn codes_in(line: &str) -> Vec<i32> {
    let end = line.find([';', '.']).unwrap_or(line.len());
    line[..end]
        .split(|c: char| !(c.is_ascii_digit() || c == '-'))
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// Splits `text` at commas outside `<>` and `()`.
fn split_top(text: &str) -> Vec<String> {
    let (mut depth, mut cur, mut out) = (0i32, String::new(), Vec::new());
    for c in text.chars() {
        match c {
            '<' | '(' => depth += 1,
            '>' | ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `async fn f(&self, a: A, b: B) -> Result<R, E>;` -> ([(a, A), (b, B)], R).
fn parse_signature(sig: &str) -> (Vec<(String, String)>, String) {
    let open = sig.find('(').unwrap_or(0);
    let close = sig.rfind("->").unwrap_or(sig.len());
    let inner = sig[open + 1..close].trim().trim_end_matches(')');
    let params = split_top(inner)
        .into_iter()
        .filter(|p| p != "&self")
        .filter_map(|p| {
            let (n, t) = p.split_once(':')?;
            Some((n.trim().to_string(), t.trim().to_string()))
        })
        .collect();
    let result = sig[close..]
        .trim_start_matches("->")
        .trim()
        .strip_prefix("Result<")
        .map(|r| split_top(r.trim_end_matches(';').trim().trim_end_matches('>')))
        .and_then(|parts| parts.into_iter().next())
        .unwrap_or_else(|| "null".into());
    (params, result)
}

/// The last path segment of a type (`proctor_state::jobs::JobRecord` -> `JobRecord`).
fn last_segment(t: &str) -> &str {
    t.rsplit("::").next().unwrap_or(t)
}

/// JSON Schema of a Rust type of the API.
pub fn schema(t: &str) -> Value {
    let t = t.trim();
    if let Some(inner) = t.strip_prefix("Option<").and_then(|s| s.strip_suffix('>')) {
        return json!({"oneOf": [schema(inner), {"type": "null"}]});
    }
    if let Some(inner) = t.strip_prefix("Vec<").and_then(|s| s.strip_suffix('>')) {
        return json!({"type": "array", "items": schema(inner)});
    }
    match last_segment(t) {
        "String" => json!({"type": "string"}),
        "u64" | "u32" | "i64" | "i32" => json!({"type": "integer", "minimum": 0}),
        "bool" => json!({"type": "boolean"}),
        "()" | "null" => json!({"type": "null"}),
        "Hash" => json!({"type": "string", "pattern": "^[0-9a-f]{64}$", "title": "Hash"}),
        "PublicKey" => json!({"type": "string", "pattern": "^[0-9a-f]{64}$", "title": "PublicKey"}),
        "Address" => {
            json!({"type": "string", "title": "Address", "description": "bech32m address"})
        }
        other => json!({"$ref": format!("#/components/schemas/{other}")}),
    }
}

/// The OpenRPC 1.2 document of the API.
pub fn document() -> Value {
    let methods = methods();
    let mut components = serde_json::Map::new();
    let mut names: Vec<&str> = Vec::new();
    for m in &methods {
        names.extend(m.params.iter().map(|(_, t)| t.as_str()));
        names.push(&m.result);
    }
    for t in names {
        collect_refs(&schema(t), &mut components);
    }
    let list: Vec<Value> = methods
        .iter()
        .map(|m| {
            let errors: Vec<Value> = m
                .errors
                .iter()
                .chain(&COMMON_ERRORS)
                .map(|c| json!({"code": c, "message": "see docs/rpc.md"}))
                .collect();
            json!({
                "name": m.name,
                "summary": m.summary,
                "params": m.params.iter().map(|(n, t)| json!({
                    "name": n,
                    "required": !t.starts_with("Option<"),
                    "schema": schema(t),
                })).collect::<Vec<_>>(),
                "result": {"name": "result", "schema": schema(&m.result)},
                "errors": errors,
            })
        })
        .collect();
    json!({
        "openrpc": "1.2.6",
        "info": {"title": "proctor node", "version": env!("CARGO_PKG_VERSION")},
        "methods": list,
        "components": {"schemas": components},
    })
}

/// Adds an object schema for every `$ref` in `s` (the API's JSON types).
fn collect_refs(s: &Value, out: &mut serde_json::Map<String, Value>) {
    match s {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.entry(name.to_string())
                    .or_insert_with(|| json!({"type": "object", "title": name}));
            }
            m.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failing_input_is_named_by_position_or_name() {
        let all = methods();
        let m = |name: &str| all.iter().find(|m| m.name == name).unwrap().clone();
        let submit = m("proctor_submitWork");
        let good = format!("\"{}\"", "ab".repeat(32));
        // By position: a bad template hash, then a good one with no proof.
        assert_eq!(
            failing_input(&submit, Some(r#"["zz", "00"]"#)).as_deref(),
            Some("template")
        );
        assert_eq!(
            failing_input(&submit, Some(&format!("[{good}]"))).as_deref(),
            Some("proof")
        );
        assert_eq!(
            failing_input(&submit, Some(&format!("[{good}, \"00\"]"))),
            None
        );
        // By name, and with no params at all.
        let account = m("proctor_account");
        assert_eq!(
            failing_input(&account, Some(r#"{"address": 7}"#)).as_deref(),
            Some("address")
        );
        assert_eq!(failing_input(&account, None).as_deref(), Some("address"));
        let job = m("proctor_job");
        assert_eq!(failing_input(&job, Some("[-1]")).as_deref(), Some("id"));
    }

    #[test]
    fn a_trait_becomes_its_methods() {
        let src = r#"
#[rpc(server, client, namespace = "demo")]
pub trait Demo {
    /// Adds.
    /// Errors: 4004, 4013; and more 9999.
    #[method(name = "add")]
    async fn add(
        &self,
        a: u64,
        b: Option<Vec<Hash>>,
    ) -> Result<Vec<proctor_state::jobs::JobRecord>, ErrorObjectOwned>;

    /// Heads.
    #[subscription(name = "sub" => "item", unsubscribe = "unsub", item = HeadInfo)]
    async fn sub(&self) -> SubscriptionResult;
}
"#;
        let m = methods_in(src);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["demo_add", "demo_sub", "demo_unsub"]);
        assert_eq!(m[0].summary, "Adds.");
        assert_eq!(
            m[0].params,
            [
                ("a".to_string(), "u64".to_string()),
                ("b".to_string(), "Option<Vec<Hash>>".to_string())
            ]
        );
        assert_eq!(m[0].result, "Vec<proctor_state::jobs::JobRecord>");
        assert_eq!(m[0].errors, [4004, 4013]);
        assert_eq!(m[1].result, "HeadInfo");
        assert_eq!(
            schema(&m[0].result)["items"]["$ref"],
            "#/components/schemas/JobRecord"
        );
    }

    #[test]
    fn the_document_covers_this_crates_traits() {
        let doc = document();
        let methods = doc["methods"].as_array().unwrap();
        let names: Vec<&str> = methods.iter().filter_map(|m| m["name"].as_str()).collect();
        for n in [
            "proctor_head",
            "proctor_blobRange",
            "admin_banPeer",
            "proctor_subscribeNewHeads",
        ] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let range = methods
            .iter()
            .find(|m| m["name"] == "proctor_blobRange")
            .unwrap();
        let params: Vec<&str> = range["params"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(params, ["hash", "offset", "len"]);
        // Every referenced type has a component.
        let text = doc.to_string();
        for name in doc["components"]["schemas"].as_object().unwrap().keys() {
            assert!(text.contains(&format!("#/components/schemas/{name}")));
        }
    }
}
