//! YAML with positions: a spanned tree (`tree`), field paths (`path`), and a serde
//! deserializer over the tree whose errors carry `file:line:col` and the path (`de`).

pub(crate) mod de;
pub(crate) mod path;
pub(crate) mod tree;

pub(crate) use path::Path;
pub(crate) use tree::{Kind, Node, Resolved};
