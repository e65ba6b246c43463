//! A tiny namespace-aware element tree over quick-xml.
//!
//! arXiv's two API generations order elements differently and declare
//! namespaces in different places (on the root, or inline on each element),
//! so the parsers look elements up by (namespace URI, local name) in a tree
//! instead of reacting to events in document order. Documents are bounded
//! by `sources.max_body_bytes`, so holding one as a tree is cheap.
//!
//! quick-xml never expands DTD-declared entities, so entity-expansion
//! attacks cannot blow up memory here.

use super::SourceError;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

pub const ATOM: &str = "http://www.w3.org/2005/Atom";
pub const ARXIV: &str = "http://arxiv.org/schemas/atom";
pub const DC: &str = "http://purl.org/dc/elements/1.1/";
pub const OPENSEARCH: &str = "http://a9.com/-/spec/opensearch/1.1/";

/// Deeper nesting than this is not a feed; refuse it rather than recurse.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Default)]
pub struct Element {
    /// Namespace URI, empty when the element is in no namespace.
    pub ns: String,
    pub name: String,
    /// (namespace URI or empty, local name, value).
    pub attrs: Vec<(String, String, String)>,
    /// Concatenated text and CDATA directly inside this element.
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    pub fn is(&self, ns: &str, name: &str) -> bool {
        self.ns == ns && self.name == name
    }

    /// The first child with this namespace and local name.
    pub fn child(&self, ns: &str, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.is(ns, name))
    }

    pub fn children_named<'a>(
        &'a self,
        ns: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.is(ns, name))
    }

    /// Text of the first matching child, if it exists.
    pub fn child_text(&self, ns: &str, name: &str) -> Option<&str> {
        self.child(ns, name).map(|c| c.text.as_str())
    }

    /// An attribute in no namespace (the usual case for `term`, `href`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| ns.is_empty() && n == name)
            .map(|(_, _, v)| v.as_str())
    }
}

fn ns_of(r: &ResolveResult) -> String {
    match r {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
        _ => String::new(),
    }
}

/// The element a start tag opens, with its attributes (namespace
/// declarations left out), before its children and text.
fn start_element(
    reader: &NsReader<&[u8]>,
    ns: String,
    start: &BytesStart<'_>,
    format: &'static str,
) -> Result<Element, SourceError> {
    let bad = |detail: String| SourceError::malformed(format, detail);
    let mut el = Element {
        ns,
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        ..Element::default()
    };
    for attr in start.attributes() {
        let attr = attr.map_err(|e| bad(format!("bad attribute: {e}")))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ans, local) = reader.resolve_attribute(attr.key);
        let value = attr
            .unescape_value()
            .map_err(|e| bad(format!("bad attribute value: {e}")))?;
        el.attrs.push((
            ns_of(&ans),
            String::from_utf8_lossy(local.as_ref()).into_owned(),
            value.into_owned(),
        ));
    }
    Ok(el)
}

/// Parses a whole document into its root element.
///
/// Fails on malformed XML, mismatched or missing end tags (a truncated
/// document), non-UTF-8 text, more than one root, or no root at all.
pub fn parse(bytes: &[u8], format: &'static str) -> Result<Element, SourceError> {
    let bad = |detail: String| SourceError::malformed(format, detail);
    let mut reader = NsReader::from_reader(bytes);
    let cfg = reader.config_mut();
    cfg.expand_empty_elements = true;
    cfg.check_end_names = true;
    cfg.trim_text(false);

    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = reader.buffer_position();
        let (ns, event) = reader
            .read_resolved_event()
            .map_err(|e| bad(format!("XML error near byte {pos}: {e}")))?;
        match event {
            Event::Start(start) => {
                if root.is_some() {
                    return Err(bad("content after the root element".into()));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(bad(format!("elements nested deeper than {MAX_DEPTH}")));
                }
                let ns = ns_of(&ns);
                stack.push(start_element(&reader, ns, &start, format)?);
            }
            Event::End(_) => {
                let el = stack
                    .pop()
                    .ok_or_else(|| bad("end tag without start".into()))?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => root = Some(el),
                }
            }
            Event::Text(t) => {
                let text = t.unescape().map_err(|e| bad(format!("bad text: {e}")))?;
                match stack.last_mut() {
                    Some(el) => el.text.push_str(&text),
                    None if text.trim().is_empty() => {}
                    None => return Err(bad("text outside the root element".into())),
                }
            }
            Event::CData(c) => {
                let text =
                    std::str::from_utf8(&c).map_err(|e| bad(format!("CDATA is not UTF-8: {e}")))?;
                if let Some(el) = stack.last_mut() {
                    el.text.push_str(text);
                }
            }
            Event::Empty(_) => unreachable!("expand_empty_elements is on"),
            Event::Eof => break,
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
        }
    }
    if !stack.is_empty() {
        return Err(bad(format!(
            "document ends inside <{}> (truncated?)",
            stack.last().map(|e| e.name.as_str()).unwrap_or("")
        )));
    }
    root.ok_or_else(|| bad("no root element (empty body?)".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_root_namespace_declarations_resolve_alike() {
        let a = parse(
            br#"<feed xmlns="http://www.w3.org/2005/Atom" xmlns:arxiv="http://arxiv.org/schemas/atom"><arxiv:doi>x</arxiv:doi></feed>"#,
            "t",
        )
        .unwrap();
        let b = parse(
            br#"<feed xmlns="http://www.w3.org/2005/Atom"><a:doi xmlns:a="http://arxiv.org/schemas/atom">x</a:doi></feed>"#,
            "t",
        )
        .unwrap();
        assert!(a.is(ATOM, "feed") && b.is(ATOM, "feed"));
        assert_eq!(a.child_text(ARXIV, "doi"), Some("x"));
        assert_eq!(b.child_text(ARXIV, "doi"), Some("x"));
    }

    #[test]
    fn truncated_documents_are_rejected() {
        let err = parse(b"<rss><channel><item><title>x</title>", "t").unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn entities_and_cdata_become_text() {
        let el = parse(b"<a>x &amp; y <![CDATA[<b>]]></a>", "t").unwrap();
        assert_eq!(el.text, "x & y <b>");
    }
}
