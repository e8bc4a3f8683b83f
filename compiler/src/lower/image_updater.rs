//! `image-updater`: which Argo CD Image Updater release the estate targets,
//! the chart that installs it, and how often it checks registries.

use kdl::KdlNode;

use super::declare::Single;
use super::read::{Cx, Shape};
use super::shared::duration_prop;
use super::{DEFAULT_IMAGE_UPDATER, DEFAULT_IMAGE_UPDATER_CHART, Decl, Lowerer};
use crate::diagnostic::{Code, FileId, Loc};
use crate::model::{ImageUpdaterSettings, Spanned};
use crate::semver::Version;

const IMAGE_UPDATER: Single = Single {
    node: "image-updater",
    shape: Shape {
        args: 0,
        props: &["version", "chart-version", "interval"],
        children: Some(&[]),
    },
    first_label: None,
    help: "keep one `image-updater`",
};

impl Lowerer<'_> {
    /// The estate's `image-updater` settings, the defaults when it has none.
    pub(super) fn lower_image_updater(&mut self, decls: &[Decl<'_>]) -> ImageUpdaterSettings {
        let default_version = Version::parse(DEFAULT_IMAGE_UPDATER).expect("valid default");
        let Some((file, node)) = self.only_one(decls, &IMAGE_UPDATER) else {
            return ImageUpdaterSettings {
                version: Spanned::new(
                    default_version,
                    Loc {
                        file: FileId(0),
                        offset: 0,
                        len: 0,
                    },
                ),
                chart_version: DEFAULT_IMAGE_UPDATER_CHART.into(),
                interval: None,
                loc: None,
            };
        };
        let mut cx = self.cx(file);
        let loc = cx.node_loc(node);
        let version = match cx.prop_str(node, "version") {
            Some(v) => release(&mut cx, v, default_version),
            None => Spanned::new(default_version, loc),
        };
        let chart_version = chart_version(&mut cx, node);
        let interval = duration_prop(&mut cx, node, "interval");
        ImageUpdaterSettings {
            version,
            chart_version,
            interval,
            loc: Some(loc),
        }
    }
}

/// `version=`: a 1.x release (keelson writes the 1.x `ImageUpdater`
/// resource); `default` when it is not one (reported).
fn release(cx: &mut Cx<'_>, v: Spanned<String>, default: Version) -> Spanned<Version> {
    match Version::parse(v.value.trim_start_matches('v')) {
        Ok(parsed) if parsed.major == 1 && parsed.pre.is_empty() => Spanned::new(parsed, v.loc),
        Ok(_) => {
            cx.error(Code::UnsupportedVersion, v.loc, format!("Image Updater {} is not supported", v.value))
                .help = Some("keelson targets the `ImageUpdater` resource of Image Updater 1.x: write e.g. `version=\"1.3.0\"`".into());
            Spanned::new(default, v.loc)
        }
        Err(_) => {
            cx.error(
                Code::InvalidValue,
                v.loc,
                format!("`{}` is not a version", v.value),
            )
            .help = Some("write a release such as `version=\"1.3.0\"`".into());
            Spanned::new(default, v.loc)
        }
    }
}

/// `chart-version=`: the `argocd-image-updater` chart's version.
fn chart_version(cx: &mut Cx<'_>, node: &KdlNode) -> String {
    match cx.prop_str(node, "chart-version") {
        Some(v) => {
            if Version::parse(&v.value).is_err() {
                cx.error(Code::InvalidValue, v.loc, format!("`{}` is not a chart version", v.value)).help =
                    Some("write the `argocd-image-updater` chart's version, e.g. `chart-version=\"1.0.1\"`".into());
            }
            v.value
        }
        None => DEFAULT_IMAGE_UPDATER_CHART.into(),
    }
}
