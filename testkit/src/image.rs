//! Test images: the config, manifest and index documents pushed to the registry.
//!
//! The JSON is written by hand in a fixed key order, so the bytes (and so the digests) do not
//! depend on serde_json features that another crate in the workspace may turn on.

use sha2::{Digest, Sha256};

/// `gzip -n -9` of an empty tar archive (1024 zero bytes): the one tiny layer every test image
/// shares, so a repository uploads it once and other repositories can mount it.
pub(crate) const LAYER_GZ: [u8; 29] = [
    0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0x63, 0x60, 0x18, 0x05, 0xa3, 0x60,
    0x14, 0x8c, 0x54, 0x00, 0x00, 0x2e, 0xaf, 0xb5, 0xef, 0x00, 0x04, 0x00, 0x00,
];

/// The manifest format of a single-platform image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`
    Oci,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerV2,
}

impl ManifestKind {
    /// The manifest's media type (also its Content-Type on PUT and GET).
    pub fn media_type(self) -> &'static str {
        match self {
            ManifestKind::Oci => "application/vnd.oci.image.manifest.v1+json",
            ManifestKind::DockerV2 => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }

    /// The media type of the config blob it points to.
    pub fn config_media_type(self) -> &'static str {
        match self {
            ManifestKind::Oci => "application/vnd.oci.image.config.v1+json",
            ManifestKind::DockerV2 => "application/vnd.docker.container.image.v1+json",
        }
    }

    /// The media type of its (gzipped tar) layer.
    pub fn layer_media_type(self) -> &'static str {
        match self {
            ManifestKind::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
            ManifestKind::DockerV2 => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// The format of a multi-platform index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// `application/vnd.oci.image.index.v1+json`
    Oci,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerList,
}

impl IndexKind {
    /// The index's media type.
    pub fn media_type(self) -> &'static str {
        match self {
            IndexKind::Oci => "application/vnd.oci.image.index.v1+json",
            IndexKind::DockerList => "application/vnd.docker.distribution.manifest.list.v2+json",
        }
    }
}

/// A tiny single-platform image: one shared layer and a config naming its platform and date.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TestImage {
    /// RFC 3339, written verbatim into the config's `created`; `None` leaves the field out.
    pub created: Option<String>,
    /// The config's `os`, e.g. `linux`.
    pub os: String,
    /// The config's `architecture`, e.g. `amd64`.
    pub arch: String,
    /// The config's `variant`, e.g. `v8`; `None` leaves the field out.
    pub variant: Option<String>,
    /// The manifest format.
    pub media: ManifestKind,
    /// Makes the image unique (a config label), so digests differ even with the same `created`;
    /// empty adds no label.
    pub salt: String,
}

impl TestImage {
    /// An OCI image for `os`/`arch` with no `created` and no salt.
    pub fn new(os: &str, arch: &str) -> TestImage {
        TestImage {
            created: None,
            os: os.into(),
            arch: arch.into(),
            variant: None,
            media: ManifestKind::Oci,
            salt: String::new(),
        }
    }

    /// An OCI linux/amd64 image created at `created` (RFC 3339).
    pub fn linux_amd64(created: &str) -> TestImage {
        TestImage::new("linux", "amd64").created(created)
    }

    /// An OCI linux/arm64/v8 image created at `created` (RFC 3339).
    pub fn linux_arm64(created: &str) -> TestImage {
        TestImage::new("linux", "arm64")
            .variant("v8")
            .created(created)
    }

    /// Sets `created`.
    pub fn created(mut self, created: &str) -> TestImage {
        self.created = Some(created.into());
        self
    }

    /// Leaves `created` out of the config.
    pub fn without_created(mut self) -> TestImage {
        self.created = None;
        self
    }

    /// Sets the platform variant.
    pub fn variant(mut self, variant: &str) -> TestImage {
        self.variant = Some(variant.into());
        self
    }

    /// Sets the salt.
    pub fn salt(mut self, salt: &str) -> TestImage {
        self.salt = salt.into();
        self
    }

    /// Uses a Docker v2 schema 2 manifest.
    pub fn docker(mut self) -> TestImage {
        self.media = ManifestKind::DockerV2;
        self
    }

    /// Uses an OCI manifest.
    pub fn oci(mut self) -> TestImage {
        self.media = ManifestKind::Oci;
        self
    }

    /// The config blob's bytes.
    pub fn config_bytes(&self) -> Vec<u8> {
        let mut s = format!(
            r#"{{"architecture":{},"os":{}"#,
            js(&self.arch),
            js(&self.os)
        );
        if let Some(v) = &self.variant {
            s += &format!(r#","variant":{}"#, js(v));
        }
        if let Some(c) = &self.created {
            s += &format!(r#","created":{}"#, js(c));
        }
        if self.salt.is_empty() {
            s += r#","config":{}"#;
        } else {
            s += &format!(
                r#","config":{{"Labels":{{"org.keelson.testkit.salt":{}}}}}"#,
                js(&self.salt)
            );
        }
        s += &format!(
            r#","rootfs":{{"type":"layers","diff_ids":[{}]}}}}"#,
            js(&layer_diff_id())
        );
        s.into_bytes()
    }

    /// The config blob's digest.
    pub fn config_digest(&self) -> String {
        sha256_digest(&self.config_bytes())
    }

    /// The manifest's bytes, exactly as pushed.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        let config = self.config_bytes();
        format!(
            r#"{{"schemaVersion":2,"mediaType":{},"config":{{"mediaType":{},"digest":{},"size":{}}},"layers":[{{"mediaType":{},"digest":{},"size":{}}}]}}"#,
            js(self.media.media_type()),
            js(self.media.config_media_type()),
            js(&sha256_digest(&config)),
            config.len(),
            js(self.media.layer_media_type()),
            js(&sha256_digest(&LAYER_GZ)),
            LAYER_GZ.len(),
        )
        .into_bytes()
    }

    /// The manifest's digest: what [`crate::Registry::push`] returns.
    pub fn digest(&self) -> String {
        sha256_digest(&self.manifest_bytes())
    }

    /// The descriptor's `platform` object.
    fn platform_json(&self) -> String {
        let mut s = format!(
            r#"{{"architecture":{},"os":{}"#,
            js(&self.arch),
            js(&self.os)
        );
        if let Some(v) = &self.variant {
            s += &format!(r#","variant":{}"#, js(v));
        }
        s + "}"
    }
}

/// The bytes of an index (OCI image index or Docker manifest list) over `images`, each entry
/// with the image's own manifest media type, digest, size and platform.
pub fn index_bytes(images: &[TestImage], kind: IndexKind) -> Vec<u8> {
    let entries: Vec<String> = images
        .iter()
        .map(|img| {
            let m = img.manifest_bytes();
            format!(
                r#"{{"mediaType":{},"digest":{},"size":{},"platform":{}}}"#,
                js(img.media.media_type()),
                js(&sha256_digest(&m)),
                m.len(),
                img.platform_json()
            )
        })
        .collect();
    format!(
        r#"{{"schemaVersion":2,"mediaType":{},"manifests":[{}]}}"#,
        js(kind.media_type()),
        entries.join(",")
    )
    .into_bytes()
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The uncompressed layer's digest (the config's `rootfs.diff_ids`).
fn layer_diff_id() -> String {
    sha256_digest(&[0u8; 1024])
}

/// A JSON string literal.
fn js(s: &str) -> String {
    serde_json::to_string(s).expect("string serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_is_gzip_of_empty_tar() {
        // The gzip trailer holds the uncompressed size: 1024.
        assert_eq!(&LAYER_GZ[25..], &[0, 4, 0, 0]);
    }

    #[test]
    fn documents_are_valid_json() {
        let img = TestImage::linux_arm64("2024-01-02T03:04:05Z").salt("x\"y");
        for bytes in [
            img.config_bytes(),
            img.manifest_bytes(),
            index_bytes(&[img.clone(), img.clone().docker()], IndexKind::Oci),
        ] {
            serde_json::from_slice::<serde_json::Value>(&bytes).unwrap();
        }
        let cfg: serde_json::Value = serde_json::from_slice(&img.config_bytes()).unwrap();
        assert_eq!(cfg["created"], "2024-01-02T03:04:05Z");
        assert_eq!(cfg["variant"], "v8");
        let bare: serde_json::Value =
            serde_json::from_slice(&TestImage::new("linux", "amd64").config_bytes()).unwrap();
        assert!(bare.get("created").is_none() && bare.get("variant").is_none());
    }

    #[test]
    fn salt_changes_digest() {
        let a = TestImage::linux_amd64("2024-01-01T00:00:00Z");
        assert_ne!(a.digest(), a.clone().salt("1").digest());
        assert_ne!(a.digest(), a.clone().docker().digest());
    }
}
