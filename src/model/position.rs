//! Line and column of every node of a YAML document, from a second, position-keeping parse
//! (yaml-rust2's marked events) beside serde_yaml, which keeps no positions on values.
//!
//! Built only when a file has something to report, so clean loads never pay for it.
//! Aliases resolve to their anchor's position; `<<` merge keys are followed on lookup. An
//! alias shares its anchor's node (no copy), so the map is linear in the file's size however
//! many aliases it has.

use std::collections::HashMap;
use std::rc::Rc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;

use super::path::{Path, Segment};

/// A 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    fn from_marker(marker: Marker) -> Self {
        // yaml-rust2 lines are 1-based and columns 0-based.
        Position { line: marker.line() as u32, column: marker.col() as u32 + 1 }
    }
}

#[derive(Debug, Clone)]
enum Node {
    Scalar(Position),
    Sequence(Position, Vec<Rc<Node>>),
    Mapping(Position, Vec<Entry>),
}

#[derive(Debug, Clone)]
struct Entry {
    key: String,
    key_at: Position,
    value: Rc<Node>,
}

impl Node {
    fn at(&self) -> Position {
        match self {
            // A block mapping's start marker sits at its first `:`; its first key reads better.
            Node::Mapping(_, entries) if !entries.is_empty() => entries[0].key_at,
            Node::Scalar(at) | Node::Sequence(at, _) | Node::Mapping(at, _) => *at,
        }
    }

    fn entry(&self, key: &str) -> Option<&Entry> {
        let Node::Mapping(_, entries) = self else { return None };
        if let Some(entry) = entries.iter().rev().find(|e| e.key == key) {
            return Some(entry);
        }
        // Keys brought in by `<<: *anchor` or `<<: [*a, *b]`.
        let merged = entries.iter().find(|e| e.key == "<<")?;
        match merged.value.as_ref() {
            Node::Sequence(_, sources) => sources.iter().find_map(|source| source.entry(key)),
            source => source.entry(key),
        }
    }

    fn child(&self, segment: &Segment) -> Option<&Node> {
        match (self, segment) {
            (Node::Sequence(_, items), Segment::Index(i)) => items.get(*i).map(Rc::as_ref),
            (_, Segment::Key(key)) => self.entry(key).map(|e| e.value.as_ref()),
            _ => None,
        }
    }
}

/// Positions of one YAML document's nodes.
#[derive(Debug, Clone, Default)]
pub struct PositionMap {
    root: Option<Rc<Node>>,
}

impl PositionMap {
    /// Parses `text`; a document that does not parse gives an empty map (every lookup then
    /// answers the start of the file; the syntax error itself is reported by serde_yaml).
    pub fn parse(text: &str) -> Self {
        let mut builder = Builder::default();
        let mut parser = Parser::new_from_str(text);
        match parser.load(&mut builder, false) {
            Ok(()) => PositionMap { root: builder.root },
            Err(_) => PositionMap::default(),
        }
    }

    /// Where the value at `path` starts; the deepest existing ancestor if the path runs out.
    pub fn value(&self, path: &Path) -> Position {
        let Some(mut node) = self.root.as_deref() else { return Position::START };
        for segment in &path.0 {
            match node.child(segment) {
                Some(child) => node = child,
                None => break,
            }
        }
        node.at()
    }

    /// Where the key of the mapping entry at `path` starts (for "unknown key" messages);
    /// falls back to [`PositionMap::value`] when the path does not end in a key.
    pub fn key(&self, path: &Path) -> Position {
        let (Some(Segment::Key(last)), Some(root)) = (path.0.last(), self.root.as_deref()) else {
            return self.value(path);
        };
        let mut node = root;
        for segment in &path.0[..path.0.len() - 1] {
            match node.child(segment) {
                Some(child) => node = child,
                None => return node.at(),
            }
        }
        node.entry(last).map_or_else(|| node.at(), |e| e.key_at)
    }
}

/// Collects marked events into a tree.
#[derive(Default)]
struct Builder {
    stack: Vec<Partial>,
    anchors: HashMap<usize, Rc<Node>>,
    root: Option<Rc<Node>>,
}

enum Partial {
    Sequence { at: Position, anchor: usize, items: Vec<Rc<Node>> },
    Mapping { at: Position, anchor: usize, entries: Vec<Entry>, key: Option<(String, Position)> },
}

impl Builder {
    fn push_node(&mut self, node: Rc<Node>, anchor: usize, key_text: Option<String>) {
        if anchor != 0 {
            self.anchors.insert(anchor, Rc::clone(&node));
        }
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Partial::Sequence { items, .. }) => items.push(node),
            Some(Partial::Mapping { entries, key, .. }) => match key.take() {
                Some((key, key_at)) => entries.push(Entry { key, key_at, value: node }),
                // A key: scalars carry their text; complex keys are named by position only.
                None => *key = Some((key_text.unwrap_or_default(), node.at())),
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, marker: Marker) {
        let at = Position::from_marker(marker);
        match event {
            Event::Scalar(text, _, anchor, _) => {
                self.push_node(Rc::new(Node::Scalar(at)), anchor, Some(text))
            }
            Event::Alias(anchor) => {
                let node =
                    self.anchors.get(&anchor).cloned().unwrap_or_else(|| Rc::new(Node::Scalar(at)));
                self.push_node(node, 0, None);
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push(Partial::Sequence { at, anchor, items: Vec::new() })
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Partial::Mapping { at, anchor, entries: Vec::new(), key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Partial::Sequence { at, anchor, items }) => {
                        (Node::Sequence(at, items), anchor)
                    }
                    Some(Partial::Mapping { at, anchor, entries, .. }) => {
                        (Node::Mapping(at, entries), anchor)
                    }
                    None => return,
                };
                self.push_node(Rc::new(node), anchor, None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, column: u32) -> Position {
        Position { line, column }
    }

    const DOC: &str = "\
x-common: &common
  restart: always
services:
  web:
    <<: *common
    image: nginx
    ports:
      - \"8080:80\"
      - target: 81
";

    #[test]
    fn finds_values_keys_and_items() {
        let map = PositionMap::parse(DOC);
        assert_eq!(map.value(&Path::of(&["services", "web", "image"])), pos(6, 12));
        assert_eq!(map.key(&Path::of(&["services", "web", "image"])), pos(6, 5));
        let ports = Path::of(&["services", "web", "ports"]);
        assert_eq!(map.value(&ports.index(0)), pos(8, 9));
        assert_eq!(map.value(&ports.index(1).key("target")), pos(9, 17));
    }

    #[test]
    fn follows_merge_keys_to_the_anchor() {
        let map = PositionMap::parse(DOC);
        assert_eq!(map.value(&Path::of(&["services", "web", "restart"])), pos(2, 12));
    }

    #[test]
    fn a_missing_path_answers_its_deepest_ancestor() {
        let map = PositionMap::parse(DOC);
        assert_eq!(map.value(&Path::of(&["services", "web", "nope", "deeper"])), pos(5, 5));
        assert_eq!(map.key(&Path::of(&["services", "db", "image"])), pos(4, 3));
    }

    #[test]
    fn broken_yaml_answers_the_start() {
        let map = PositionMap::parse("a: [1, 2\nb: }");
        assert_eq!(map.value(&Path::of(&["a"])), Position::START);
    }

    #[test]
    fn aliases_share_their_anchor_instead_of_copying_it() {
        // 2,000 aliases to a 2,000-item list: 4·10⁶ nodes if copied.
        let items = vec!["x"; 2_000].join(", ");
        let aliases = vec!["*a"; 2_000].join(", ");
        let text = format!("a: &a [{items}]\nb: [{aliases}]\n");
        let map = PositionMap::parse(&text);
        let Some(Node::Mapping(_, entries)) = map.root.as_deref() else { panic!() };
        let Node::Sequence(_, aliases) = entries[1].value.as_ref() else { panic!() };
        assert!(Rc::ptr_eq(&aliases[0], &aliases[1999]));
        assert_eq!(map.value(&Path::of(&["b"]).index(5).index(3)), pos(1, 17));
    }
}
