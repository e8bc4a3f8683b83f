//! YAML files as Kubernetes resources: which documents a file holds, who
//! each one is (apiVersion, kind, namespace, name), and which fields changed.

use serde::{Deserialize, Serialize};
use serde_yaml::Value;

use super::{FieldChange, ResourceDiff, Status};

/// Who a document is. A document without `kind` (a values file) has none of
/// these; a kustomization has no name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ResourceId {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ResourceId {
    pub(crate) fn of_value(v: &Value) -> ResourceId {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let meta = v.get("metadata");
        ResourceId {
            api_version: text(v.get("apiVersion")),
            kind: text(v.get("kind")),
            namespace: text(meta.and_then(|m| m.get("namespace"))),
            name: text(meta.and_then(|m| m.get("name"))),
        }
    }

    pub(crate) fn is_application(&self) -> bool {
        self.kind.as_deref() == Some("Application")
            && self
                .api_version
                .as_deref()
                .is_some_and(|a| a.starts_with("argoproj.io/"))
    }
}

impl std::fmt::Display for ResourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kind.as_deref().unwrap_or("document"))?;
        match (&self.namespace, &self.name) {
            (Some(ns), Some(n)) => write!(f, " {ns}/{n}"),
            (None, Some(n)) => write!(f, " {n}"),
            _ => Ok(()),
        }
    }
}

/// A file's documents, or `None` when it is not YAML (or not valid YAML:
/// then it is compared as text only). Empty documents are skipped.
pub fn documents(bytes: &[u8]) -> Option<Vec<Value>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut docs = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(v) => docs.push(v),
            Err(_) => return None,
        }
    }
    Some(docs)
}

/// Documents keyed by who they are; a second document with the same
/// identity in one file is told apart by its position among them.
fn keyed(docs: &[Value]) -> Vec<((ResourceId, usize), &Value)> {
    let mut seen: std::collections::HashMap<ResourceId, usize> = Default::default();
    docs.iter()
        .map(|d| {
            let id = ResourceId::of_value(d);
            let n = seen.entry(id.clone()).or_default();
            *n += 1;
            ((id, *n), d)
        })
        .collect()
}

/// The resources that differ between two versions of a file (either may be
/// absent), in the new file's order, then the removed ones.
pub fn compare(old: &[Value], new: &[Value]) -> Vec<ResourceDiff> {
    let old = keyed(old);
    let new = keyed(new);
    let mut out = Vec::new();
    for (key, n) in &new {
        match old.iter().find(|(k, _)| k == key) {
            None => out.push(ResourceDiff {
                id: key.0.clone(),
                status: Status::Added,
                fields: Vec::new(),
            }),
            Some((_, o)) if o == n => {}
            Some((_, o)) => out.push(ResourceDiff {
                id: key.0.clone(),
                status: Status::Changed,
                fields: fields(o, n),
            }),
        }
    }
    for (key, _) in &old {
        if !new.iter().any(|(k, _)| k == key) {
            out.push(ResourceDiff {
                id: key.0.clone(),
                status: Status::Removed,
                fields: Vec::new(),
            });
        }
    }
    out
}

/// The leaves that differ, by path: in the new document's order, then the
/// removed ones in the old one's.
pub fn fields(old: &Value, new: &Value) -> Vec<FieldChange> {
    let mut a = Vec::new();
    let mut b = Vec::new();
    leaves(old, String::new(), &mut a);
    leaves(new, String::new(), &mut b);
    let olds: std::collections::HashMap<&str, &str> =
        a.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
    let news: std::collections::HashMap<&str, &str> =
        b.iter().map(|(p, v)| (p.as_str(), v.as_str())).collect();
    let mut out = Vec::new();
    for (path, value) in &b {
        match olds.get(path.as_str()) {
            Some(old) if old == value => {}
            old => out.push(FieldChange {
                path: path.clone(),
                old: old.map(|s| s.to_string()),
                new: Some(value.clone()),
            }),
        }
    }
    for (path, value) in &a {
        if !news.contains_key(path.as_str()) {
            out.push(FieldChange {
                path: path.clone(),
                old: Some(value.clone()),
                new: None,
            });
        }
    }
    out
}

/// Flattens a document into `path: scalar` pairs. List items that all carry
/// a distinct `name` are addressed by it (`containers[name=web].image`), so
/// reordering or inserting one does not shift every later index.
fn leaves(v: &Value, path: String, out: &mut Vec<(String, String)>) {
    match v {
        Value::Mapping(m) if !m.is_empty() => {
            for (k, v) in m {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => scalar(other),
                };
                let p = if is_plain_key(&key) {
                    if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    }
                } else {
                    format!("{path}[{}]", quoted(&key))
                };
                leaves(v, p, out);
            }
        }
        Value::Sequence(s) if !s.is_empty() => {
            let names: Option<Vec<&str>> = s
                .iter()
                .map(|i| i.get("name").and_then(Value::as_str))
                .collect();
            let by_name = names.as_ref().is_some_and(|n| {
                let mut sorted = n.clone();
                sorted.sort_unstable();
                sorted.windows(2).all(|w| w[0] != w[1])
            });
            for (i, item) in s.iter().enumerate() {
                let index = match (&names, by_name) {
                    (Some(n), true) => format!("[name={}]", n[i]),
                    _ => format!("[{i}]"),
                };
                leaves(item, format!("{path}{index}"), out);
            }
        }
        Value::Tagged(t) => leaves(&t.value, path, out),
        other => out.push((path, scalar(other))),
    }
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn quoted(k: &str) -> String {
    serde_json::to_string(k).unwrap_or_else(|_| k.to_string())
}

/// A leaf as YAML would show it, on one line.
fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            if s.contains('\n') || s.is_empty() {
                quoted(s)
            } else {
                s.clone()
            }
        }
        Value::Mapping(_) => "{}".into(),
        Value::Sequence(_) => "[]".into(),
        Value::Tagged(t) => format!("{} {}", t.tag, scalar(&t.value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str) -> Value {
        serde_yaml::from_str(s).unwrap()
    }

    #[test]
    fn fields_by_name_and_quoted_keys() {
        let old = doc(
            "metadata:\n  annotations:\n    argocd.argoproj.io/sync-wave: '0'\nimages:\n- name: a\n  newTag: 1.0.0\n- name: b\n  newTag: 2.0.0\n",
        );
        let new = doc(
            "metadata:\n  annotations:\n    argocd.argoproj.io/sync-wave: '1'\nimages:\n- name: b\n  newTag: 2.0.0\n- name: a\n  newTag: 1.1.0\nextra: true\n",
        );
        let changes: Vec<String> = fields(&old, &new)
            .iter()
            .map(|c| format!("{}: {:?} -> {:?}", c.path, c.old, c.new))
            .collect();
        assert_eq!(
            changes,
            [
                r#"metadata.annotations["argocd.argoproj.io/sync-wave"]: Some("0") -> Some("1")"#,
                r#"images[name=a].newTag: Some("1.0.0") -> Some("1.1.0")"#,
                r#"extra: None -> Some("true")"#,
            ]
        );
    }

    #[test]
    fn resources_by_identity() {
        let old = documents(b"kind: A\nmetadata: {name: x}\n---\nkind: B\nmetadata: {name: y}\n")
            .unwrap();
        let new = documents(
            b"kind: B\nmetadata: {name: y}\nspec: 1\n---\nkind: C\nmetadata: {name: z}\n",
        )
        .unwrap();
        let got: Vec<(String, Status)> = compare(&old, &new)
            .into_iter()
            .map(|r| (r.id.to_string(), r.status))
            .collect();
        assert_eq!(
            got,
            [
                ("B y".to_string(), Status::Changed),
                ("C z".to_string(), Status::Added),
                ("A x".to_string(), Status::Removed),
            ]
        );
        assert!(documents(b"a: [").is_none());
        assert!(documents(&[0xff, 0xfe]).is_none());
    }
}
