//! A YAML document as a tree whose every node knows its line, so configuration errors can
//! name the file, line and field; and a small emitter for the configuration schema.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A YAML value with the line it starts on (1-based).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub(crate) line: usize,
    pub(crate) value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// A scalar; `plain` is false when it was quoted or a block scalar (always a string).
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    /// Entries in document order, each key with its own line.
    Map(Vec<(String, usize, Node)>),
}

impl Node {
    /// Whether this is the plain scalar `null`, `~` or empty.
    pub(crate) fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    pub(crate) fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Where a parse failed: line and message.
pub(crate) struct ParseError {
    pub(crate) line: usize,
    pub(crate) message: String,
}

enum Frame {
    Seq(usize, Vec<Node>),
    Map(usize, Vec<(String, usize, Node)>, Option<(String, usize)>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    error: Option<ParseError>,
    documents: usize,
}

impl Builder {
    fn fail(&mut self, line: usize, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(ParseError {
                line,
                message: message.into(),
            });
        }
    }

    fn push_value(&mut self, node: Node) {
        let mut problem = None;
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending)) => match pending.take() {
                // No key pending: this node is a key.
                None => match node.value {
                    Value::Scalar { text, .. } => *pending = Some((text, node.line)),
                    _ => problem = Some((node.line, "mapping keys must be scalars".to_string())),
                },
                Some((key, key_line)) => {
                    if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == key) {
                        problem = Some((
                            key_line,
                            format!("{key}: duplicate key (first given at line {first})"),
                        ));
                    }
                    entries.push((key, key_line, node));
                }
            },
        }
        if let Some((line, message)) = problem {
            self.fail(line, message);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::DocumentStart => {
                self.documents += 1;
                if self.documents > 1 {
                    self.fail(line, "only one YAML document is allowed");
                }
            }
            Event::Alias(_) => self.fail(line, "YAML aliases (*name) are not supported"),
            Event::Scalar(text, style, anchor, _) => {
                if anchor != 0 {
                    self.fail(line, "YAML anchors (&name) are not supported");
                }
                let plain = style == TScalarStyle::Plain;
                self.push_value(Node {
                    line,
                    value: Value::Scalar { text, plain },
                });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) if anchor != 0 => {
                self.fail(line, "YAML anchors (&name) are not supported");
                let frame = match ev {
                    Event::SequenceStart(..) => Frame::Seq(line, Vec::new()),
                    _ => Frame::Map(line, Vec::new(), None),
                };
                self.stack.push(frame);
            }
            Event::SequenceStart(..) => self.stack.push(Frame::Seq(line, Vec::new())),
            Event::MappingStart(..) => self.stack.push(Frame::Map(line, Vec::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let node = match self.stack.pop() {
                    Some(Frame::Seq(l, items)) => Node {
                        line: l,
                        value: Value::Seq(items),
                    },
                    Some(Frame::Map(l, entries, _)) => Node {
                        line: l,
                        value: Value::Map(entries),
                    },
                    None => return,
                };
                self.push_value(node);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. An empty document is an empty mapping.
pub(crate) fn parse(text: &str) -> Result<Node, ParseError> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, true) {
        return Err(ParseError {
            line: e.marker().line(),
            message: format!("YAML syntax error: {}", e.info()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.root.unwrap_or(Node {
        line: 1,
        value: Value::Map(Vec::new()),
    }))
}

/// Whether `s` can be written as a plain scalar and read back as the same string.
fn plain_safe(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let keyword = matches!(
        s.to_ascii_lowercase().as_str(),
        "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n" | "~"
    );
    (first.is_ascii_alphabetic() || first == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/'))
        && !keyword
        && s.parse::<f64>().is_err()
}

/// A string as a YAML scalar: plain when that reads back the same, else double-quoted.
pub(crate) fn quote(s: &str) -> String {
    if plain_safe(s) {
        s.to_string()
    } else {
        let mut out = String::with_capacity(s.len() + 2);
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                    out.push_str(&format!("\\x{:02x}", c as u32))
                }
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }
}

/// A float as a YAML scalar that reads back to the same value.
pub(crate) fn float(v: f64) -> String {
    format!("{v:?}")
}

/// A JSON value as a YAML flow value.
pub(crate) fn flow(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float(f),
            _ => n.to_string(),
        },
        J::String(s) => quote(s),
        J::Array(items) => {
            let parts: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", parts.join(", "))
        }
        J::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), flow(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// A YAML value as JSON (for free-form metadata). Plain scalars become null, booleans and
/// numbers where they read as such.
pub(crate) fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Scalar { text, plain } => {
            if !plain {
                return J::String(text.clone());
            }
            if node.is_null() {
                return J::Null;
            }
            match text.as_str() {
                "true" | "True" | "TRUE" => return J::Bool(true),
                "false" | "False" | "FALSE" => return J::Bool(false),
                _ => {}
            }
            if let Ok(i) = text.parse::<i64>() {
                return J::from(i);
            }
            if let Ok(u) = text.parse::<u64>() {
                return J::from(u);
            }
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => serde_json::Number::from_f64(f)
                    .map(J::Number)
                    .unwrap_or_else(|| J::String(text.clone())),
                _ => J::String(text.clone()),
            }
        }
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, _, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_tracked_and_syntax_errors_located() {
        let n = parse("a: 1\nb:\n  - x\n  - y: 2\n").ok().unwrap();
        let Value::Map(entries) = &n.value else {
            panic!("root is a map")
        };
        assert_eq!(entries[1].1, 2);
        let Value::Seq(items) = &entries[1].2.value else {
            panic!("b is a list")
        };
        assert_eq!(items[1].line, 4);
        let e = parse("a: [1, 2\nb: 3\n").err().unwrap();
        assert!(e.message.contains("syntax"), "{}", e.message);
        let e = parse("a: 1\na: 2\n").err().unwrap();
        assert_eq!(e.line, 2);
    }

    #[test]
    fn quoting_reads_back() {
        for s in [
            "gpu-01",
            "true",
            "1.5",
            "",
            "a b",
            "x: y",
            "\"q\"",
            "tab\there",
            "ü",
            "-x",
        ] {
            let doc = format!("k: {}\n", quote(s));
            let n = parse(&doc).ok().unwrap();
            let Value::Map(e) = n.value else { panic!() };
            let Value::Scalar { text, .. } = &e[0].2.value else {
                panic!()
            };
            assert_eq!(text, s, "{doc}");
        }
    }
}
