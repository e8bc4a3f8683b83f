//! The parse cache: a parsed estate file, keyed by the blake3 of its text.
//!
//! Parsing KDL is most of what a check of an unchanged estate costs, and
//! most files of a large estate are unchanged between two compiles. The
//! cache keeps what lowering reads from a parse — names, type annotations,
//! values and every span — in a compact binary form, and rebuilds the
//! document from it. Formatting (comments, whitespace, the spelling of a
//! value) is not kept: `keelson fmt` parses for itself.
//!
//! An entry's key covers the text and this keelson build, so a hit can only
//! return what parsing that text would; a payload whose checksum fails, or
//! that does not decode, is a miss (the file is parsed again). Entries live
//! in `<cache>/kdl/`, written to a temporary name and renamed into place.

use std::path::{Path, PathBuf};

use kdl::{KdlDocument, KdlEntry, KdlIdentifier, KdlNode, KdlValue};
use miette::SourceSpan;

/// Bumped when the encoding changes.
const FORMAT: &[u8] = b"keelson-kdl-cache 1\n";

/// Nesting deeper than this is not cached (and the decoder refuses it), so
/// neither side recurses without bound.
const MAX_DEPTH: usize = 128;

/// Where parsed files are kept, or nowhere.
#[derive(Debug, Clone, Default)]
pub struct ParseCache {
    dir: Option<PathBuf>,
}

impl ParseCache {
    /// No cache: every file is parsed.
    pub fn none() -> ParseCache {
        ParseCache { dir: None }
    }

    /// Entries under `<cache_dir>/kdl`, or no cache.
    pub fn new(cache_dir: Option<&Path>) -> ParseCache {
        cache_dir.map_or_else(ParseCache::none, ParseCache::at)
    }

    /// Entries under `<cache_dir>/kdl`.
    pub fn at(cache_dir: &Path) -> ParseCache {
        ParseCache {
            dir: Some(cache_dir.join("kdl")),
        }
    }

    fn entry(&self, text: &str) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let mut h = blake3::Hasher::new();
        h.update(FORMAT);
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(build_id());
        h.update(text.as_bytes());
        Some(dir.join(h.finalize().to_hex().as_str()))
    }

    /// The cached parse of `text`, if there is a sound one.
    pub fn get(&self, text: &str) -> Option<KdlDocument> {
        let path = self.entry(text)?;
        let bytes = std::fs::read(path).ok()?;
        let (sum, payload) = bytes.split_at_checked(32)?;
        if blake3::hash(payload).as_bytes() != sum {
            return None;
        }
        decode(payload)
    }

    /// Keeps the parse of `text`. Failures are ignored: the cache only
    /// saves time.
    pub fn put(&self, text: &str, doc: &KdlDocument) {
        let Some(path) = self.entry(text) else {
            return;
        };
        if path.exists() {
            return;
        }
        let Some(payload) = encode(doc) else {
            return;
        };
        let mut bytes = Vec::with_capacity(32 + payload.len());
        bytes.extend_from_slice(blake3::hash(&payload).as_bytes());
        bytes.extend_from_slice(&payload);
        let Some(dir) = path.parent() else {
            return;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return;
        }
        let tmp = dir.join(format!(
            ".tmp-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        if std::fs::write(&tmp, &bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// Distinguishes builds of one version (a development build's parser or
/// encoder may differ): the running executable's length and modification
/// time, read once.
fn build_id() -> &'static [u8] {
    static ID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let mut id = Vec::new();
        if let Ok(meta) = std::env::current_exe().and_then(std::fs::metadata) {
            id.extend_from_slice(&meta.len().to_le_bytes());
            if let Ok(m) = meta.modified() {
                if let Ok(d) = m.duration_since(std::time::UNIX_EPOCH) {
                    id.extend_from_slice(&d.as_nanos().to_le_bytes());
                }
            }
        }
        id
    })
}

// ---- encoding ----------------------------------------------------------

/// The document in the cache's form; `None` when it cannot be kept (nesting
/// too deep, a span beyond 4 GiB).
pub fn encode(doc: &KdlDocument) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut w = Writer { out: &mut out };
    w.doc(doc, 0)?;
    Some(out)
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
    fn u32(&mut self, n: usize) -> Option<()> {
        let n = u32::try_from(n).ok()?;
        self.out.extend_from_slice(&n.to_le_bytes());
        Some(())
    }

    fn span(&mut self, s: SourceSpan) -> Option<()> {
        self.u32(s.offset())?;
        self.u32(s.len())
    }

    fn str(&mut self, s: &str) -> Option<()> {
        self.u32(s.len())?;
        self.out.extend_from_slice(s.as_bytes());
        Some(())
    }

    fn ident(&mut self, id: &KdlIdentifier) -> Option<()> {
        self.str(id.value())?;
        self.span(id.span())
    }

    fn opt_ident(&mut self, id: Option<&KdlIdentifier>) -> Option<()> {
        match id {
            None => {
                self.out.push(0);
                Some(())
            }
            Some(id) => {
                self.out.push(1);
                self.ident(id)
            }
        }
    }

    fn doc(&mut self, doc: &KdlDocument, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.span(doc.span())?;
        self.u32(doc.nodes().len())?;
        for node in doc.nodes() {
            self.ident(node.name())?;
            self.opt_ident(node.ty())?;
            self.span(node.span())?;
            self.u32(node.entries().len())?;
            for e in node.entries() {
                self.opt_ident(e.name())?;
                self.opt_ident(e.ty())?;
                self.span(e.span())?;
                match e.value() {
                    KdlValue::String(s) => {
                        self.out.push(0);
                        self.str(s)?;
                    }
                    KdlValue::Integer(i) => {
                        self.out.push(1);
                        self.out.extend_from_slice(&i.to_le_bytes());
                    }
                    KdlValue::Float(f) => {
                        self.out.push(2);
                        self.out.extend_from_slice(&f.to_bits().to_le_bytes());
                    }
                    KdlValue::Bool(b) => {
                        self.out.push(3);
                        self.out.push(u8::from(*b));
                    }
                    KdlValue::Null => self.out.push(4),
                }
            }
            match node.children() {
                None => self.out.push(0),
                Some(children) => {
                    self.out.push(1);
                    self.doc(children, depth + 1)?;
                }
            }
        }
        Some(())
    }
}

// ---- decoding ----------------------------------------------------------

/// The document back from the cache's form; `None` for anything malformed
/// (never a panic: the bytes come from disk).
pub fn decode(bytes: &[u8]) -> Option<KdlDocument> {
    let mut r = Reader { bytes, at: 0 };
    let doc = r.doc(0)?;
    (r.at == bytes.len()).then_some(doc)
}

struct Reader<'b> {
    bytes: &'b [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let s = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u32(&mut self) -> Option<usize> {
        let b: [u8; 4] = self.take(4)?.try_into().ok()?;
        Some(u32::from_le_bytes(b) as usize)
    }

    fn span(&mut self) -> Option<SourceSpan> {
        let offset = self.u32()?;
        let len = self.u32()?;
        Some(SourceSpan::new(offset.into(), len))
    }

    fn str(&mut self) -> Option<String> {
        let n = self.u32()?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).ok()
    }

    fn ident(&mut self) -> Option<KdlIdentifier> {
        let mut id = KdlIdentifier::from(self.str()?);
        id.set_span(self.span()?);
        Some(id)
    }

    fn opt_ident(&mut self) -> Option<Option<KdlIdentifier>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.ident()?)),
            _ => None,
        }
    }

    fn doc(&mut self, depth: usize) -> Option<KdlDocument> {
        if depth > MAX_DEPTH {
            return None;
        }
        let mut doc = KdlDocument::new();
        doc.set_span(self.span()?);
        let count = self.u32()?;
        // Each node takes at least 30 bytes: a lying count fails here
        // rather than reserving memory for it.
        if count > self.bytes.len() - self.at {
            return None;
        }
        let nodes = doc.nodes_mut();
        nodes.reserve(count);
        for _ in 0..count {
            let mut node = KdlNode::new(self.ident()?);
            if let Some(ty) = self.opt_ident()? {
                node.set_ty(ty);
            }
            node.set_span(self.span()?);
            let entries = self.u32()?;
            if entries > self.bytes.len() - self.at {
                return None;
            }
            for _ in 0..entries {
                let name = self.opt_ident()?;
                let ty = self.opt_ident()?;
                let span = self.span()?;
                let value = match self.byte()? {
                    0 => KdlValue::String(self.str()?),
                    1 => KdlValue::Integer(i128::from_le_bytes(self.take(16)?.try_into().ok()?)),
                    2 => KdlValue::Float(f64::from_bits(u64::from_le_bytes(
                        self.take(8)?.try_into().ok()?,
                    ))),
                    3 => match self.byte()? {
                        0 => KdlValue::Bool(false),
                        1 => KdlValue::Bool(true),
                        _ => return None,
                    },
                    4 => KdlValue::Null,
                    _ => return None,
                };
                let mut entry = match name {
                    Some(name) => KdlEntry::new_prop(name, value),
                    None => KdlEntry::new(value),
                };
                if let Some(ty) = ty {
                    entry.set_ty(ty);
                }
                entry.set_span(span);
                node.entries_mut().push(entry);
            }
            match self.byte()? {
                0 => {}
                1 => node.set_children(self.doc(depth + 1)?),
                _ => return None,
            }
            nodes.push(node);
        }
        Some(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
// a comment the cache does not keep
repo url="https://git.example.com/gitops.git" { layout "flat" }
(app)app "web" port=8080 ratio=0.5 on=#true off=#false none=#null big=170141183460469231731687303715884105727 {
    image "ghcr.io/acme/web" { strategy "semver" constraint="^1.2" }
    "quoted name" (u8)7 -3 "multi\nline"
    empty {}
}
"#;

    #[test]
    fn a_decoded_document_encodes_to_the_same_bytes() {
        let doc = KdlDocument::parse_v2(TEXT).unwrap();
        let once = encode(&doc).unwrap();
        let back = decode(&once).unwrap();
        assert_eq!(encode(&back).unwrap(), once);
        // Values, names, types and spans survive; the formatting does not.
        let node = &back.nodes()[1];
        assert_eq!(node.name().value(), "app");
        assert_eq!(node.ty().map(|t| t.value()), Some("app"));
        assert_eq!(node.span(), doc.nodes()[1].span());
        assert_eq!(node.get("port"), Some(&KdlValue::Integer(8080)));
        assert_eq!(node.get("ratio"), Some(&KdlValue::Float(0.5)));
        assert_eq!(node.get("none"), Some(&KdlValue::Null));
        let quoted = &node.children().unwrap().nodes()[1];
        assert_eq!(quoted.name().value(), "quoted name");
        assert_eq!(
            quoted.name().span(),
            doc.nodes()[1].children().unwrap().nodes()[1].name().span()
        );
        assert_eq!(quoted.entries()[0].ty().map(|t| t.value()), Some("u8"));
        assert_eq!(
            quoted.entries()[2].value(),
            &KdlValue::String("multi\nline".into())
        );
        assert!(node.children().unwrap().nodes()[2].children().is_some());
    }

    #[test]
    fn malformed_payloads_are_misses_not_panics() {
        let doc = KdlDocument::parse_v2(TEXT).unwrap();
        let bytes = encode(&doc).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode(&bytes[..cut]).is_none(),
                "a payload cut at {cut} decoded"
            );
        }
        let mut flipped = bytes.clone();
        for i in 0..flipped.len() {
            flipped[i] ^= 0xff;
            let _ = decode(&flipped);
            flipped[i] ^= 0xff;
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(decode(&longer).is_none());
    }

    #[test]
    fn the_cache_returns_what_was_put_and_ignores_a_corrupt_entry() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ParseCache::at(dir.path());
        assert!(cache.get(TEXT).is_none());
        let doc = KdlDocument::parse_v2(TEXT).unwrap();
        cache.put(TEXT, &doc);
        let hit = cache.get(TEXT).expect("a hit");
        assert_eq!(encode(&hit), encode(&doc));
        // Another text is another entry.
        assert!(cache.get("other 1").is_none());
        let path = cache.entry(TEXT).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(cache.get(TEXT).is_none());
        assert!(ParseCache::none().get(TEXT).is_none());
    }
}
