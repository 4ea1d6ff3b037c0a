//! XML for S3 bodies: a small writer over quick-xml's escaping for responses,
//! and quick-xml readers for the few request bodies S3 defines. The only module
//! that knows XML.

use quick_xml::escape::escape;
use quick_xml::events::Event;

use crate::error::Error;

/// Request bodies with XML are small; refuse anything larger.
pub const MAX_XML_BODY_BYTES: usize = 1 << 20;
const NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// Builds an XML document element by element.
pub struct XmlWriter {
    out: String,
    stack: Vec<&'static str>,
}

impl XmlWriter {
    /// A document whose root element carries the S3 namespace.
    pub fn new(root: &'static str) -> XmlWriter {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!("<{root} xmlns=\"{NS}\">"));
        XmlWriter { out, stack: vec![root] }
    }

    /// A document without the namespace (error bodies).
    pub fn plain(root: &'static str) -> XmlWriter {
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!("<{root}>"));
        XmlWriter { out, stack: vec![root] }
    }

    pub fn open(&mut self, name: &'static str) -> &mut Self {
        self.out.push_str(&format!("<{name}>"));
        self.stack.push(name);
        self
    }

    pub fn close(&mut self) -> &mut Self {
        if let Some(name) = self.stack.pop() {
            self.out.push_str(&format!("</{name}>"));
        }
        self
    }

    pub fn elem(&mut self, name: &str, text: &str) -> &mut Self {
        self.out.push_str(&format!("<{name}>{}</{name}>", escape(text)));
        self
    }

    /// Text inside the innermost open element.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.out.push_str(&escape(text));
        self
    }

    pub fn finish(mut self) -> String {
        while !self.stack.is_empty() {
            self.close();
        }
        self.out
    }
}

/// A parsed XML element tree, enough for S3's request bodies.
#[derive(Debug, Default, Clone)]
pub struct Node {
    pub name: String,
    pub text: String,
    pub children: Vec<Node>,
}

impl Node {
    pub fn child(&self, name: &str) -> Option<&Node> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into a tree (namespaces dropped from names).
pub fn parse(body: &[u8]) -> Result<Node, Error> {
    if body.len() > MAX_XML_BODY_BYTES {
        return Err(Error::MalformedXml);
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut stack: Vec<Node> = vec![Node::default()];
    loop {
        match reader.read_event().map_err(|_| Error::MalformedXml)? {
            Event::Start(e) => {
                let name = e.local_name().into_inner().to_string();
                stack.push(Node { name, ..Default::default() });
            }
            Event::Empty(e) => {
                let name = e.local_name().into_inner().to_string();
                stack.last_mut().ok_or(Error::MalformedXml)?.children.push(Node { name, ..Default::default() });
            }
            Event::Text(t) => {
                let text = t.xml10_content();
                let text = quick_xml::escape::unescape(&text).map_err(|_| Error::MalformedXml)?;
                stack.last_mut().ok_or(Error::MalformedXml)?.text.push_str(&text);
            }
            Event::GeneralRef(r) => {
                let text = match r.resolve_char_ref().map_err(|_| Error::MalformedXml)? {
                    Some(c) => c.to_string(),
                    None => quick_xml::escape::unescape(&format!("&{};", &*r))
                        .map_err(|_| Error::MalformedXml)?
                        .into_owned(),
                };
                stack.last_mut().ok_or(Error::MalformedXml)?.text.push_str(&text);
            }
            Event::CData(t) => {
                stack.last_mut().ok_or(Error::MalformedXml)?.text.push_str(&t);
            }
            Event::End(_) => {
                let node = stack.pop().ok_or(Error::MalformedXml)?;
                stack.last_mut().ok_or(Error::MalformedXml)?.children.push(node);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let root = stack.pop().ok_or(Error::MalformedXml)?;
    if !stack.is_empty() {
        return Err(Error::MalformedXml);
    }
    root.children.into_iter().next().ok_or(Error::MalformedXml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_and_parse() {
        let mut w = XmlWriter::new("Root");
        w.open("A").elem("Key", "a<b&c").close();
        let doc = w.finish();
        assert!(doc.contains("<Key>a&lt;b&amp;c</Key>"), "{doc}");
        let node = parse(doc.as_bytes()).unwrap();
        assert_eq!(node.name, "Root");
        assert_eq!(node.child("A").unwrap().child_text("Key"), Some("a<b&c"));
        assert!(parse(b"<a><b></a>").is_err());
        assert!(parse(b"").is_err());
    }
}
