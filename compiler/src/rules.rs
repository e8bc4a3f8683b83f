//! Value rules shared by the lowering: Kubernetes names, URLs, credential
//! references, secret detection, glob syntax. Each returns a reason on failure
//! and never touches diagnostics, so they are easy to test on their own.

use std::sync::LazyLock;

use regex::Regex;

use crate::model::CredentialRef;

/// RFC 1123 label, as Kubernetes checks namespace and most resource names.
pub(crate) fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 63 {
        return Err(format!(
            "it is {} characters long; the limit is 63",
            s.len()
        ));
    }
    check_label_chars(s)
}

fn check_label_chars(s: &str) -> Result<(), String> {
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(if c.is_ascii_uppercase() {
            format!("it contains the uppercase letter `{c}`")
        } else {
            format!("it contains `{c}`")
        });
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err("it starts or ends with `-`".into());
    }
    Ok(())
}

/// RFC 1123 subdomain: what Application and ImageUpdater names must be.
pub(crate) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("it is empty".into());
    }
    if s.len() > 253 {
        return Err(format!(
            "it is {} characters long; the limit is 253",
            s.len()
        ));
    }
    for part in s.split('.') {
        if part.is_empty() {
            return Err("it has an empty `.`-separated part".into());
        }
        check_label_chars(part)?;
    }
    Ok(())
}

/// A Kubernetes label key: an optional DNS subdomain prefix and `/`, then a
/// name of up to 63 alphanumerics, `-`, `_` and `.`, alphanumeric at both ends.
pub(crate) fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        dns1123_subdomain(p).map_err(|why| format!("its prefix is invalid: {why}"))?;
    }
    if name.is_empty() || name.len() > 63 {
        return Err("its name must be 1 to 63 characters".into());
    }
    let ok = |c: char| c.is_ascii_alphanumeric();
    if !name.chars().all(|c| ok(c) || "-_.".contains(c))
        || !name.starts_with(ok)
        || !name.ends_with(ok)
    {
        return Err("it has characters other than letters, digits, `-`, `_` and `.`, or does not start and end with a letter or digit".into());
    }
    Ok(())
}

/// A lowercase, hyphenated suggestion for an invalid name.
pub(crate) fn suggest_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-');
    out.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches('-')
        .to_string()
}

/// A URL with one of the given schemes and a host.
pub fn url(s: &str, schemes: &[&str]) -> Result<(), String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return Err(format!(
            "it has no scheme; expected {}",
            list_schemes(schemes)
        ));
    };
    if !schemes.contains(&scheme) {
        return Err(format!(
            "the scheme `{scheme}` is not one of {}",
            list_schemes(schemes)
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // A password in the user part is caught by the estate-wide secret scan.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() {
        return Err("it has no host".into());
    }
    if host.chars().any(|c| c.is_whitespace()) || rest.chars().any(|c| c.is_whitespace()) {
        return Err("it contains whitespace".into());
    }
    Ok(())
}

fn list_schemes(schemes: &[&str]) -> String {
    schemes
        .iter()
        .map(|s| format!("`{s}://`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A git repository URL: `https://`, `http://`, `ssh://` or scp-like `git@host:path`.
pub(crate) fn git_url(s: &str) -> Result<(), String> {
    static SCP: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^\s]+$").expect("static regex")
    });
    if SCP.is_match(s) {
        return Ok(());
    }
    url(s, &["https", "http", "ssh", "git"])
}

static NS_NAME: &str = r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?";

/// Parses a credentials reference in one of Image Updater's four forms.
pub(crate) fn credential_ref(s: &str) -> Result<CredentialRef, String> {
    static PULLSECRET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            r"^pullsecret:({NS_NAME})/({NS_NAME}(?:\.{NS_NAME})*)$"
        ))
        .expect("re")
    });
    static SECRET: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(
            r"^secret:({NS_NAME})/({NS_NAME}(?:\.{NS_NAME})*)#([-._a-zA-Z0-9]+)$"
        ))
        .expect("re")
    });
    static ENV: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^env:([A-Za-z_][A-Za-z0-9_]*)$").expect("re"));
    if let Some(c) = PULLSECRET.captures(s) {
        return Ok(CredentialRef::PullSecret {
            namespace: c[1].to_string(),
            name: c[2].to_string(),
        });
    }
    if let Some(c) = SECRET.captures(s) {
        return Ok(CredentialRef::Secret {
            namespace: c[1].to_string(),
            name: c[2].to_string(),
            field: c[3].to_string(),
        });
    }
    if let Some(c) = ENV.captures(s) {
        return Ok(CredentialRef::Env(c[1].to_string()));
    }
    if let Some(path) = s.strip_prefix("ext:") {
        if path.starts_with('/') && !path.contains(char::is_whitespace) && path.len() > 1 {
            return Ok(CredentialRef::Ext(path.to_string()));
        }
        return Err(
            "`ext:` needs an absolute path to a script, e.g. `ext:/scripts/ecr-login.sh`".into(),
        );
    }
    let prefix = s.split_once(':').map_or(s, |(p, _)| p);
    Err(match prefix {
        "pullsecret" => "write `pullsecret:<namespace>/<secret name>`".into(),
        "secret" => "write `secret:<namespace>/<secret name>#<field>`".into(),
        "env" => "write `env:<VARIABLE>` with a valid variable name".into(),
        _ => "use one of `pullsecret:<ns>/<name>`, `secret:<ns>/<name>#<field>`, `env:<VAR>` or `ext:/path`".into(),
    })
}

/// If a string looks like a secret value (a token, password or key), says
/// what kind. References to secrets are fine; values are never.
pub(crate) fn looks_like_secret(s: &str) -> Option<&'static str> {
    static PATTERNS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
        [
            (
                r"-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----",
                "a private key",
            ),
            (r"\bgh[pousr]_[A-Za-z0-9]{30,}", "a GitHub token"),
            (r"\bgithub_pat_[A-Za-z0-9_]{30,}", "a GitHub token"),
            (r"\bglpat-[A-Za-z0-9_\-]{20,}", "a GitLab token"),
            (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", "an AWS access key"),
            (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", "a Slack token"),
            (
                r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
                "a JSON web token",
            ),
            (r"\b(sk|rk)_live_[A-Za-z0-9]{20,}", "an API key"),
            (r"\bAIza[0-9A-Za-z_\-]{35}\b", "a Google API key"),
            (r"\bnpm_[A-Za-z0-9]{36}\b", "an npm token"),
            (
                r"[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@",
                "a URL with a password",
            ),
        ]
        .into_iter()
        .map(|(re, what)| (Regex::new(re).expect("static regex"), what))
        .collect()
    });
    PATTERNS
        .iter()
        .find(|(re, _)| re.is_match(s))
        .map(|(_, what)| *what)
}

/// Keys whose values are secrets when written literally.
pub(crate) fn is_secret_key(key: &str) -> bool {
    let k: String = key
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    [
        "password",
        "passwd",
        "token",
        "apikey",
        "secretkey",
        "privatekey",
        "clientsecret",
        "accesskey",
    ]
    .iter()
    .any(|s| k.ends_with(s))
}

/// Literal secrets inside YAML text (Helm values): `adminPassword: hunter2`.
/// Returns (byte offset of the value, length, what).
pub(crate) fn secrets_in_yaml(text: &str) -> Vec<(usize, usize, &'static str)> {
    static KEY_VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(?m)^[ \t-]*["']?([A-Za-z0-9_.-]+)["']?[ \t]*:[ \t]*["']?([^\s"'#][^"'#\n]*?)["']?[ \t]*(#.*)?$"#)
            .expect("static regex")
    });
    let mut found = Vec::new();
    for caps in KEY_VALUE.captures_iter(text) {
        let (Some(key), Some(value)) = (caps.get(1), caps.get(2)) else {
            continue;
        };
        let v = value.as_str().trim();
        let templated = v.starts_with("${") || v.starts_with("{{") || v.starts_with('<');
        if is_secret_key(key.as_str()) && v.len() >= 4 && !templated && v != "null" && v != "~" {
            found.push((value.start(), value.len(), "a password or token"));
        } else if let Some(what) = looks_like_secret(v) {
            found.push((value.start(), value.len(), what));
        }
    }
    for (re_match, what) in [("-----BEGIN", "a private key")] {
        if let Some(i) = text.find(re_match) {
            if looks_like_secret(&text[i..]).is_some()
                && !found.iter().any(|f| f.0 <= i && i < f.0 + f.1)
            {
                found.push((i, re_match.len(), what));
            }
        }
    }
    found
}

/// Checks a pattern against Go's `filepath.Match` syntax (what Image Updater
/// uses for `ignoreTags`). Upstream silently matches nothing for a malformed
/// pattern; keelson reports it.
pub(crate) fn go_glob(pattern: &str) -> Result<(), String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err("it ends with a lone `\\`".into());
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if i < chars.len() && chars[i] == '^' {
                    i += 1;
                }
                let mut first = true;
                loop {
                    if i >= chars.len() {
                        return Err("a `[` class is not closed with `]`".into());
                    }
                    if chars[i] == ']' && !first {
                        i += 1;
                        break;
                    }
                    first = false;
                    class_char(&chars, &mut i)?;
                    if i < chars.len() && chars[i] == '-' {
                        i += 1;
                        // Go accepts a backwards range (`z-a`): it holds nothing.
                        class_char(&chars, &mut i)?;
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    let Some(&c) = chars.get(*i) else {
        return Err("a `[` class is not closed with `]`".into());
    };
    match c {
        '-' | ']' => Err(format!(
            "`{c}` must be escaped as `\\{c}` inside a `[` class"
        )),
        '\\' => {
            *i += 1;
            let e = chars
                .get(*i)
                .copied()
                .ok_or("a `[` class ends with a lone `\\`")?;
            *i += 1;
            Ok(e)
        }
        _ => {
            *i += 1;
            Ok(c)
        }
    }
}

/// `os/arch[/variant]`, as Image Updater and OCI indexes write platforms.
pub fn platform(s: &str) -> Result<(), String> {
    static PLATFORM: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9]+)?$").expect("static regex"));
    if PLATFORM.is_match(s) {
        Ok(())
    } else {
        Err("write `os/arch` or `os/arch/variant`, e.g. `linux/amd64` or `linux/arm/v7`".into())
    }
}

/// The alias pattern of the ImageUpdater CRD.
pub(crate) fn image_alias(s: &str) -> Result<(), String> {
    static ALIAS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-zA-Z0-9][a-zA-Z0-9._-]*$").expect("static regex"));
    if ALIAS.is_match(s) {
        Ok(())
    } else {
        Err("use letters, digits, `-`, `.` and `_`, starting with a letter or digit".into())
    }
}

/// An image repository without tag or digest, in the Docker reference grammar.
pub(crate) fn image_repository(s: &str) -> Result<(), String> {
    static REPO: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(:[0-9]+)?/)?[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*$",
        )
        .expect("static regex")
    });
    if s.contains('@') {
        return Err("it has a digest; write the repository alone and pin digests with `pin` or the `digest` strategy".into());
    }
    let last = s.rsplit('/').next().unwrap_or(s);
    if last.contains(':') {
        return Err(
            "it has a tag; write the repository alone and put a semver range in `constraint`"
                .into(),
        );
    }
    if REPO.is_match(s) {
        Ok(())
    } else {
        Err(
            "it is not a valid image repository (lowercase path segments, optional registry host)"
                .into(),
        )
    }
}

/// `sha256:` and 64 lowercase hex digits.
pub fn digest(s: &str) -> Result<(), String> {
    match s.strip_prefix("sha256:") {
        Some(hex)
            if hex.len() == 64
                && hex
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) =>
        {
            Ok(())
        }
        _ => Err("write `sha256:` followed by 64 lowercase hex digits".into()),
    }
}

/// A Kubernetes-style duration as Argo CD and Image Updater accept (`5s`, `3m`, `1h30m`).
pub(crate) fn duration(s: &str) -> Result<(), String> {
    static DUR: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$").expect("static regex")
    });
    if DUR.is_match(s) {
        Ok(())
    } else {
        Err("write a Go duration such as `30s`, `2m` or `1h30m`".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns1123_label("tirosh-home").is_ok());
        assert!(dns1123_label("Tirosh").is_err());
        assert!(dns1123_label("-a").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1123_subdomain("api.dev").is_ok());
        assert_eq!(suggest_name("My_App"), "my-app");
    }

    #[test]
    fn credentials() {
        assert!(matches!(
            credential_ref("pullsecret:argocd/ghcr"),
            Ok(CredentialRef::PullSecret { .. })
        ));
        assert!(matches!(
            credential_ref("secret:argocd/creds#token"),
            Ok(CredentialRef::Secret { .. })
        ));
        assert!(matches!(
            credential_ref("env:GHCR_TOKEN"),
            Ok(CredentialRef::Env(_))
        ));
        assert!(matches!(
            credential_ref("ext:/scripts/ecr.sh"),
            Ok(CredentialRef::Ext(_))
        ));
        assert!(credential_ref("ext:scripts/ecr.sh").is_err());
        assert!(credential_ref("user:hunter2").is_err());
    }

    #[test]
    fn secrets() {
        assert!(looks_like_secret("ghp_0123456789abcdefghijABCDEFGHIJ0123456789").is_some());
        assert!(looks_like_secret("AKIAIOSFODNN7EXAMPLE").is_some());
        assert!(looks_like_secret("https://bob:pw@git.example/x.git").is_some());
        assert!(looks_like_secret("pullsecret:argocd/x").is_none());
        assert_eq!(secrets_in_yaml("admin:\n  password: hunter22\n").len(), 1);
        assert!(secrets_in_yaml("existingSecret: my-secret\npasswordSecretRef: x\n").is_empty());
    }

    #[test]
    fn globs() {
        assert!(go_glob("*-debug").is_ok());
        assert!(go_glob("[a-z]*").is_ok());
        assert!(go_glob("[").is_err());
        assert!(go_glob("[z-a]").is_ok(), "Go accepts a backwards range");
        assert!(go_glob("a\\").is_err());
    }

    #[test]
    fn repositories() {
        assert!(image_repository("ghcr.io/acme/api").is_ok());
        assert!(image_repository("127.0.0.1:5000/app").is_ok());
        assert!(image_repository("nginx").is_ok());
        assert!(image_repository("ghcr.io/acme/api:1.2").is_err());
        assert!(image_repository("ghcr.io/Acme/api").is_err());
    }
}
