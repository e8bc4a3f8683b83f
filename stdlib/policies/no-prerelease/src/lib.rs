//! `stdlib:no-prerelease`: keep prereleases out of a stage.
//!
//! No params. A tag is a prerelease when it reads as a version
//! ([`keelson_policy::Version`]: optional `v`, up to three numbers) with a
//! part after `-`: `1.2.0-rc.1`, `v2.0.0-beta`. Note that `1.2.3-alpine` is
//! one too, by semver's rules. A tag that is not a version (`latest`,
//! `main-4f9c2d0`) is not judged: it is allowed, with a note saying so.
//!
//! - filter: denies prereleases, allows the rest.
//! - gate: holds when the upstream stage runs a prerelease.

use keelson_policy::{Error, FilterInput, PromoteInput, Promotion, Verdict};

pub fn filter(input: &FilterInput) -> Result<Vec<Verdict>, Error> {
    input.context.no_params()?;
    Ok(input
        .candidates
        .iter()
        .map(|c| match c.version() {
            Some(v) if v.is_prerelease() => Verdict::deny(
                &c.tag,
                format!("{} is a prerelease (`{}`)", c.tag, v.prerelease_str()),
            ),
            Some(_) => Verdict::allow(&c.tag),
            None => Verdict::allow(&c.tag).with_reason(format!(
                "`{}` is not a version, so it is not a prerelease",
                c.tag
            )),
        })
        .collect())
}

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    input.context.no_params()?;
    let up = &input.upstream;
    Ok(match up.version() {
        Some(v) if v.is_prerelease() => Promotion::hold(format!(
            "{} runs {}, a prerelease (`{}`)",
            up.stage,
            up.describe(),
            v.prerelease_str()
        )),
        Some(_) => Promotion::promote(format!("{} runs {}, a release", up.stage, up.describe())),
        None => Promotion::promote(format!(
            "{} runs {}, not a version, so not a prerelease",
            up.stage,
            up.describe()
        )),
    })
}

keelson_policy::export!(filter = filter, promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Candidate, Context, Upstream};

    fn judge(tags: &[&str]) -> Vec<Verdict> {
        filter(&FilterInput {
            candidates: tags.iter().map(|t| Candidate::new(*t)).collect(),
            ..FilterInput::default()
        })
        .unwrap()
    }

    fn gate(tag: Option<&str>) -> Promotion {
        promote(&PromoteInput {
            upstream: Upstream {
                stage: "stg".into(),
                tag: tag.map(String::from),
                digest: Some("sha256:ab".into()),
                ..Upstream::default()
            },
            ..PromoteInput::default()
        })
        .unwrap()
    }

    #[test]
    fn filter_denies_prereleases() {
        let v = judge(&[
            "1.2.0",
            "1.2.0-rc.1",
            "v2.0.0-beta+exp.sha.5114f85",
            "1.2.0+build.7",
        ]);
        assert!(v[0].is_allow());
        assert_eq!(v[0].reason, None);
        assert_eq!(
            v[1],
            Verdict::deny("1.2.0-rc.1", "1.2.0-rc.1 is a prerelease (`rc.1`)")
        );
        assert_eq!(
            v[2],
            Verdict::deny(
                "v2.0.0-beta+exp.sha.5114f85",
                "v2.0.0-beta+exp.sha.5114f85 is a prerelease (`beta`)"
            )
        );
        assert!(v[3].is_allow());
    }

    #[test]
    fn filter_allows_non_versions_saying_so() {
        let v = judge(&["latest"]);
        assert_eq!(
            v[0],
            Verdict::allow("latest")
                .with_reason("`latest` is not a version, so it is not a prerelease")
        );
    }

    #[test]
    fn gate_holds_a_prerelease() {
        assert_eq!(
            gate(Some("1.3.0-rc.2")),
            Promotion::hold("stg runs 1.3.0-rc.2, a prerelease (`rc.2`)")
        );
    }

    #[test]
    fn gate_promotes_releases_and_non_versions() {
        assert_eq!(
            gate(Some("1.3.0")),
            Promotion::promote("stg runs 1.3.0, a release")
        );
        assert_eq!(
            gate(Some("main")),
            Promotion::promote("stg runs main, not a version, so not a prerelease")
        );
        assert_eq!(
            gate(None),
            Promotion::promote("stg runs sha256:ab, not a version, so not a prerelease")
        );
    }

    #[test]
    fn takes_no_params() {
        let context = Context::default().with_params(json!({"allow": "rc"}));
        let e = filter(&FilterInput {
            context: context.clone(),
            ..FilterInput::default()
        })
        .unwrap_err();
        assert_eq!(
            e.message(),
            "bad params: this policy takes no params, but it was given `allow`"
        );
        assert!(
            promote(&PromoteInput {
                context,
                ..PromoteInput::default()
            })
            .is_err()
        );
    }
}
