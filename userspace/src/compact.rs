//! Compact forms of what each of a million reservations holds: a host
//! name kept inline when short, and the rarely set strings and option
//! lists one pointer wide. A `String` is three words and an allocation
//! of its own; at a million machines each word is 8 MB of the daemon's
//! memory.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// The longest name kept inline: what fits beside the length in 16 bytes
/// (the enum's tag takes the first).
const INLINE: usize = 14;

/// A short string held in place (host names are mostly short), a longer
/// one on the heap: 16 bytes either way, and `Option<Name>` too.
#[derive(Clone)]
pub struct Name(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        bytes: [u8; INLINE],
    },
    // A `Box<str>` would be two words, and the enum 24 bytes.
    #[allow(clippy::box_collection)]
    Heap(Box<String>),
}

impl Name {
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, bytes } => {
                let b = &bytes[..*len as usize];
                // SAFETY: the bytes were copied whole from a str (`From<&str>`).
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            Repr::Heap(s) => s,
        }
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Name {
        if s.len() > INLINE {
            return Name(Repr::Heap(Box::new(s.to_owned())));
        }
        let mut bytes = [0; INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Name(Repr::Inline {
            len: s.len() as u8,
            bytes,
        })
    }
}

impl From<String> for Name {
    fn from(s: String) -> Name {
        if s.len() > INLINE {
            Name(Repr::Heap(Box::new(s)))
        } else {
            Name::from(s.as_str())
        }
    }
}

impl From<&String> for Name {
    fn from(s: &String) -> Name {
        Name::from(s.as_str())
    }
}

/// A string one pointer wide, shared by every copy: for what few
/// reservations set (a boot file, a label), so the rest pay 8 bytes.
#[derive(Clone)]
pub struct Text(Arc<String>);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Text {
        Text(Arc::new(s.to_owned()))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Text {
        Text(Arc::new(s))
    }
}

impl From<&String> for Text {
    fn from(s: &String) -> Text {
        Text::from(s.as_str())
    }
}

/// Both string forms read as `str`, compare and hash as their text, and
/// print as it.
macro_rules! text_like {
    ($t:ty) => {
        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                self.as_str()
            }
        }

        impl PartialEq for $t {
            fn eq(&self, other: &Self) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl Eq for $t {}

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                self.as_str() == other.as_str()
            }
        }

        impl PartialOrd for $t {
            fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $t {
            fn cmp(&self, other: &Self) -> std::cmp::Ordering {
                self.as_str().cmp(other.as_str())
            }
        }

        impl std::hash::Hash for $t {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                self.as_str().hash(state)
            }
        }

        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self.as_str(), f)
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$t> for String {
            fn from(s: $t) -> String {
                s.as_str().to_owned()
            }
        }
    };
}

text_like!(Name);
text_like!(Text);

/// A list one pointer wide, empty without an allocation: most machines
/// have no options of their own. Copies share it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct List<T>(Option<Arc<Vec<T>>>);

impl<T> Default for List<T> {
    fn default() -> Self {
        List(None)
    }
}

impl<T> Deref for List<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }
}

impl<T> From<Vec<T>> for List<T> {
    fn from(v: Vec<T>) -> Self {
        List((!v.is_empty()).then(|| Arc::new(v)))
    }
}

impl<T: fmt::Debug> fmt::Debug for List<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<'a, T> IntoIterator for &'a List<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_as_written_inline_or_not() {
        for s in [
            "",
            "n",
            "node00000",
            "fourteen-chars",
            "fifteen-chars-x",
            &"x".repeat(300),
        ] {
            let n = Name::from(s);
            assert_eq!(n.as_str(), s);
            assert_eq!(Name::from(s.to_string()), n);
            assert_eq!(n.to_string(), s);
        }
        let long = Name::from("a".repeat(INLINE + 1));
        assert_eq!(Name::from("b").cmp(&long), std::cmp::Ordering::Greater);
        assert_eq!(std::mem::size_of::<Option<Name>>(), 16);
        assert_eq!(std::mem::size_of::<Option<Text>>(), 8);
        assert_eq!(std::mem::size_of::<List<u8>>(), 8);
    }

    #[test]
    fn an_empty_list_equals_the_default() {
        let l: List<u8> = Vec::new().into();
        assert_eq!(l, List::default());
        let l: List<u8> = vec![1, 2].into();
        assert_eq!(&*l, &[1, 2]);
        assert_ne!(l, List::default());
    }
}
