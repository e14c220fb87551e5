//! [`Table`]: one table of the applied state, an ordered map that remembers which keys changed.
//!
//! The state machine applies a batch of entries in place and then writes to sled only the rows
//! whose keys the batch touched ([`Table::take_changed`]), so the cost of an apply depends on what
//! the entries change, not on how many rows the tables hold. Reads go through `Deref` to the
//! `BTreeMap`; every mutation goes through a method here, so no change can skip the record.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::{Deref, RangeBounds};

/// An ordered map plus the set of keys inserted, removed or handed out mutably since the last
/// [`Table::take_changed`]. Equality compares the rows only.
#[derive(Debug, Clone)]
pub struct Table<K, V> {
    rows: BTreeMap<K, V>,
    changed: BTreeSet<K>,
}

impl<K, V> Default for Table<K, V> {
    fn default() -> Self {
        Self {
            rows: BTreeMap::new(),
            changed: BTreeSet::new(),
        }
    }
}

impl<K: PartialEq, V: PartialEq> PartialEq for Table<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.rows == other.rows
    }
}

impl<K, V> Deref for Table<K, V> {
    type Target = BTreeMap<K, V>;

    fn deref(&self) -> &BTreeMap<K, V> {
        &self.rows
    }
}

impl<'a, K, V> IntoIterator for &'a Table<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::btree_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.rows.iter()
    }
}

impl<K: Ord + Clone, V> FromIterator<(K, V)> for Table<K, V> {
    /// A table whose rows are all marked changed (like inserting them one by one).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut t = Self::default();
        for (k, v) in iter {
            t.insert(k, v);
        }
        t
    }
}

impl<K: Ord + Clone, V> Table<K, V> {
    pub fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.changed.insert(k.clone());
        self.rows.insert(k, v)
    }

    pub fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized + ToOwned<Owned = K>,
    {
        let old = self.rows.remove(k);
        if old.is_some() {
            self.changed.insert(k.to_owned());
        }
        old
    }

    /// The row of `k` to change; the key counts as changed whenever the row exists.
    pub fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Ord + ?Sized + ToOwned<Owned = K>,
    {
        let v = self.rows.get_mut(k)?;
        self.changed.insert(k.to_owned());
        Some(v)
    }

    /// Runs `f` on every row in `range`; a row counts as changed when `f` returns true.
    /// Returns how many did.
    pub fn update_range<R: RangeBounds<K>>(&mut self, range: R, mut f: impl FnMut(&mut V) -> bool) -> usize {
        let mut n = 0;
        for (k, v) in self.rows.range_mut(range) {
            if f(v) {
                self.changed.insert(k.clone());
                n += 1;
            }
        }
        n
    }

    /// [`Self::update_range`] over every row.
    pub fn update_all(&mut self, f: impl FnMut(&mut V) -> bool) -> usize {
        self.update_range(.., f)
    }

    /// The keys changed since the last call (present: write the row; absent: delete it).
    pub fn take_changed(&mut self) -> BTreeSet<K> {
        std::mem::take(&mut self.changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(t: &mut Table<String, u32>) -> Vec<String> {
        t.take_changed().into_iter().collect()
    }

    #[test]
    fn every_mutation_is_recorded_once_and_reads_are_not() {
        let mut t: Table<String, u32> = [("a".to_string(), 1), ("b".to_string(), 2)].into_iter().collect();
        assert_eq!(changed(&mut t), ["a", "b"]);
        assert_eq!(changed(&mut t), Vec::<String>::new(), "taking clears the record");

        assert_eq!(t.get("a"), Some(&1));
        assert_eq!(t.values().sum::<u32>(), 3);
        assert_eq!(changed(&mut t), Vec::<String>::new(), "reads change nothing");

        *t.get_mut("b").unwrap() = 20;
        assert!(t.get_mut("zz").is_none());
        assert_eq!(t.remove("a"), Some(1));
        assert_eq!(t.remove("nope"), None);
        t.insert("c".into(), 3);
        assert_eq!(changed(&mut t), ["a", "b", "c"], "missing keys are not recorded");
    }

    #[test]
    fn updates_record_only_the_rows_they_change() {
        let mut t: Table<String, u32> = (0..6).map(|i| (format!("k{i}"), i)).collect();
        t.take_changed();
        let n = t.update_range("k1".to_string()..="k4".to_string(), |v| {
            if *v % 2 == 0 {
                *v += 100;
                true
            } else {
                false
            }
        });
        assert_eq!(n, 2);
        assert_eq!(changed(&mut t), ["k2", "k4"]);
        assert_eq!(t.update_all(|v| *v > 100), 2);
        assert_eq!(changed(&mut t), ["k2", "k4"]);
    }

    #[test]
    fn equality_ignores_the_change_record() {
        let a: Table<String, u32> = [("x".to_string(), 1)].into_iter().collect();
        let mut b = a.clone();
        b.take_changed();
        assert_eq!(a, b);
        b.insert("x".into(), 2);
        assert_ne!(a, b);
    }
}
