// Package kv is the key-value state machine of one region: an ordered map
// from key to (value, version) with the operations a region applies —
// Get, Put, Delete, Scan and CompareAndSwap — and the split of a range.
//
// A key's version counts the writes since it was created: the first Put
// gives version 1, each later write adds one, and Delete removes the key
// (its version is 0 again, as for a key never written). CompareAndSwap with
// expected version 0 therefore means "create only if absent".
//
// The map is in memory; durability is the storage engine's job, which logs
// every mutation this package reports.
package kv

import (
	"bytes"

	"github.com/google/btree"
)

// Item is one stored key with its value and version.
type Item struct {
	Key     []byte
	Value   []byte
	Version uint64
}

func lessItem(a, b Item) bool { return bytes.Compare(a.Key, b.Key) < 0 }

// Data is the keys of one region. The zero value is not usable; call New.
type Data struct {
	tree  *btree.BTreeG[Item]
	bytes int64
}

// New returns an empty map.
func New() *Data {
	return &Data{tree: btree.NewG(16, lessItem)}
}

// Len is the number of keys.
func (d *Data) Len() int { return d.tree.Len() }

// Bytes is the approximate size: the sum of key and value lengths.
func (d *Data) Bytes() int64 { return d.bytes }

// Get returns the item stored at key.
func (d *Data) Get(key []byte) (Item, bool) {
	return d.tree.Get(Item{Key: key})
}

// Version is the key's current version, 0 when absent.
func (d *Data) Version(key []byte) uint64 {
	it, ok := d.Get(key)
	if !ok {
		return 0
	}
	return it.Version
}

// Set stores key at exactly the given value and version (replay and
// snapshot restore use it). The slices are copied.
func (d *Data) Set(key, value []byte, version uint64) { d.set(key, value, version) }

// set is Set, returning the item as stored. Its slices are the map's own
// copies, which it never changes (items are replaced whole, and reads
// hand out the same slices).
func (d *Data) set(key, value []byte, version uint64) Item {
	it := Item{Key: bytes.Clone(key), Value: bytes.Clone(value), Version: version}
	if it.Value == nil {
		it.Value = []byte{}
	}
	if old, ok := d.tree.ReplaceOrInsert(it); ok {
		d.bytes -= int64(len(old.Key) + len(old.Value))
	}
	d.bytes += int64(len(it.Key) + len(it.Value))
	return it
}

// Put writes value at key and returns the new version.
func (d *Data) Put(key, value []byte) uint64 { return d.PutItem(key, value).Version }

// PutItem is Put, returning the item as stored: its Key and Value are the
// map's own copies of key and value, which the caller may keep, read-only,
// instead of copying them again.
func (d *Data) PutItem(key, value []byte) Item {
	return d.set(key, value, d.Version(key)+1)
}

// Delete removes key and reports whether it was present.
func (d *Data) Delete(key []byte) bool {
	old, ok := d.tree.Delete(Item{Key: key})
	if ok {
		d.bytes -= int64(len(old.Key) + len(old.Value))
	}
	return ok
}

// CompareAndSwap writes value if the key's version equals expected (0 =
// absent). It returns whether it wrote, and the new version on success or
// the current version on failure.
func (d *Data) CompareAndSwap(key []byte, expected uint64, value []byte) (bool, uint64) {
	it, ok := d.CompareAndSwapItem(key, expected, value)
	return ok, it.Version
}

// CompareAndSwapItem is CompareAndSwap, returning the item as stored when
// it writes (see PutItem), and only the current version when it does not.
func (d *Data) CompareAndSwapItem(key []byte, expected uint64, value []byte) (Item, bool) {
	cur := d.Version(key)
	if cur != expected {
		return Item{Version: cur}, false
	}
	return d.set(key, value, cur+1), true
}

// Scan returns the items with start <= key < end (end nil or empty = no
// bound), in key order, at most limit of them (limit <= 0 = no limit).
func (d *Data) Scan(start, end []byte, limit int) []Item {
	var out []Item
	d.tree.AscendGreaterOrEqual(Item{Key: start}, func(it Item) bool {
		if len(end) > 0 && bytes.Compare(it.Key, end) >= 0 {
			return false
		}
		out = append(out, it)
		return limit <= 0 || len(out) < limit
	})
	return out
}

// Ascend calls fn for every item in key order until fn returns false.
func (d *Data) Ascend(fn func(Item) bool) {
	d.tree.Ascend(fn)
}

// AscendFrom calls fn for every item with key >= start, in key order, until
// fn returns false.
func (d *Data) AscendFrom(start []byte, fn func(Item) bool) {
	d.tree.AscendGreaterOrEqual(Item{Key: start}, fn)
}

// SplitOff moves every key >= at into a new map and returns it.
func (d *Data) SplitOff(at []byte) *Data {
	right := New()
	var moved []Item
	d.tree.AscendGreaterOrEqual(Item{Key: at}, func(it Item) bool {
		moved = append(moved, it)
		return true
	})
	for _, it := range moved {
		d.tree.Delete(it)
		d.bytes -= int64(len(it.Key) + len(it.Value))
		right.tree.ReplaceOrInsert(it)
		right.bytes += int64(len(it.Key) + len(it.Value))
	}
	return right
}

// MiddleKey returns a key that splits the map into two halves of about equal
// size in bytes, or nil when the map has fewer than two keys.
func (d *Data) MiddleKey() []byte {
	if d.tree.Len() < 2 {
		return nil
	}
	half := d.bytes / 2
	var acc int64
	var mid []byte
	first := true
	d.tree.Ascend(func(it Item) bool {
		if !first && acc >= half {
			mid = it.Key
			return false
		}
		first = false
		acc += int64(len(it.Key) + len(it.Value))
		return true
	})
	if mid == nil {
		max, _ := d.tree.Max()
		mid = max.Key
	}
	return bytes.Clone(mid)
}

// Clone returns an independent copy (copy-on-write; cheap).
func (d *Data) Clone() *Data {
	return &Data{tree: d.tree.Clone(), bytes: d.bytes}
}
