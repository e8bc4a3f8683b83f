//! `stdlib:same-digest`: promote only what can be pinned by digest.
//!
//! No params; a gate only (it exports `promote`, not `filter`). A tag can be
//! pushed again; a digest cannot. This gate lets a stage take its upstream's
//! image only when the upstream's digest is known, so the stage runs exactly
//! the bytes the upstream stage ran.

use keelson_policy::{Error, PromoteInput, Promotion};

pub fn promote(input: &PromoteInput) -> Result<Promotion, Error> {
    input.context.no_params()?;
    let (stage, up) = (&input.context.stage, &input.upstream);
    Ok(match &up.digest {
        Some(digest) => {
            Promotion::promote(format!("{stage} will pin {}'s digest {digest}", up.stage))
        }
        None => Promotion::hold(format!(
            "{}'s digest is unknown, so {stage} cannot be pinned to exactly what {} ran; record digests (registry or snapshot `digest`)",
            up.stage, up.stage
        )),
    })
}

keelson_policy::export!(promote = promote);

#[cfg(test)]
mod tests {
    use super::*;
    use keelson_policy::serde_json::json;
    use keelson_policy::{Context, Upstream};

    fn gate(digest: Option<&str>) -> Result<Promotion, Error> {
        promote(&PromoteInput {
            context: Context {
                stage: "prd".into(),
                ..Context::default()
            },
            upstream: Upstream {
                stage: "stg".into(),
                tag: Some("1.4.0".into()),
                digest: digest.map(String::from),
                ..Upstream::default()
            },
            ..PromoteInput::default()
        })
    }

    #[test]
    fn promotes_a_known_digest() {
        let d = "sha256:4f9c2d0e5b1a87c3d6e2f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9";
        assert_eq!(
            gate(Some(d)).unwrap(),
            Promotion::promote(format!("prd will pin stg's digest {d}"))
        );
    }

    #[test]
    fn holds_an_unknown_digest() {
        assert_eq!(
            gate(None).unwrap(),
            Promotion::hold(
                "stg's digest is unknown, so prd cannot be pinned to exactly what stg ran; record digests (registry or snapshot `digest`)"
            )
        );
    }

    #[test]
    fn takes_no_params() {
        let input = PromoteInput {
            context: Context::default().with_params(json!({"algorithm": "sha256"})),
            ..PromoteInput::default()
        };
        assert!(
            promote(&input)
                .unwrap_err()
                .message()
                .contains("takes no params")
        );
    }
}
