//! The template sets the program holds: one per distinct `tables::SetKey`,
//! shared by every machine whose replies it renders, and counted, so that
//! a set leaves the maps with its last machine.

use std::collections::HashMap;

use stormboot_common::maps::TemplateKey;

use crate::render::tables::{SetKey, Templates};

/// One set in the map.
#[derive(Clone, Debug)]
pub struct Held {
    pub id: u32,
    /// The longest of its templates' `end_off`: whether a host name fits.
    pub max_end: usize,
    variants: Vec<u16>,
    machines: u64,
}

/// The sets of one generation of the maps (an install and the API's
/// changes after it).
#[derive(Debug, Default)]
pub struct Sets {
    by_key: HashMap<SetKey, Held>,
    by_id: HashMap<u32, SetKey>,
}

impl Sets {
    pub fn get(&self, key: &SetKey) -> Option<&Held> {
        self.by_key.get(key)
    }

    /// Takes in a set rendered for the first time, as `id` (which the
    /// caller then writes into the map); no machine holds it yet.
    pub fn add(&mut self, id: u32, t: &Templates) -> &Held {
        self.by_id.insert(id, t.key.clone());
        self.by_key.entry(t.key.clone()).or_insert(Held {
            id,
            max_end: t.max_end(),
            variants: t.blocks.iter().map(|(v, _)| *v).collect(),
            machines: 0,
        })
    }

    /// `n` more machines name set `id`.
    pub fn hold(&mut self, id: u32, n: u64) {
        if let Some(h) = self.by_id.get(&id).and_then(|k| self.by_key.get_mut(k)) {
            h.machines += n;
        }
    }

    /// One machine fewer names set `id`; the map keys to delete when that
    /// was its last.
    pub fn release(&mut self, id: u32) -> Vec<TemplateKey> {
        let Some(key) = self.by_id.get(&id) else {
            return Vec::new();
        };
        let Some(h) = self.by_key.get_mut(key) else {
            return Vec::new();
        };
        h.machines = h.machines.saturating_sub(1);
        if h.machines > 0 {
            return Vec::new();
        }
        let keys = h
            .variants
            .iter()
            .map(|v| TemplateKey::new(id, *v))
            .collect();
        let key = self.by_id.remove(&id).expect("looked up above");
        self.by_key.remove(&key);
        keys
    }

    /// Every map key of every set: what a new generation deletes once
    /// its machines name its own sets.
    pub fn keys(&self) -> Vec<TemplateKey> {
        self.by_key
            .values()
            .flat_map(|h| h.variants.iter().map(|v| TemplateKey::new(h.id, *v)))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    const CFG: &str = "[server]\ninterface = \"sb0\"\naddress = \"10.50.0.1\"\n\n\
                       [[subnet]]\ncidr = \"10.50.0.0/24\"\n\n\
                       [[reservation]]\nmac = \"52:54:00:00:00:09\"\nip = \"10.50.0.9\"\n";

    #[test]
    fn a_set_goes_with_its_last_machine() {
        let cfg = Config::from_str(CFG, Path::new("stormboot.toml")).unwrap();
        let t = crate::render::tables::templates(&cfg, &cfg.reservations[0]).unwrap();
        let mut sets = Sets::default();
        assert_eq!(sets.add(7, &t).id, 7);
        sets.hold(7, 2);
        assert!(sets.release(7).is_empty(), "one machine still names it");
        assert_eq!(sets.release(7), vec![TemplateKey::new(7, 0)]);
        assert!(sets.is_empty());
        assert!(sets.get(&t.key).is_none());
    }
}
