// Package memory is the node's customer-owned memory: per-subject encryption, ranked
// search, export, and forgetting that leaves no trace.
//
// A memory belongs to a tenant and a subject (a person, a case, a project) and carries a
// classification, a source, a creation time and its text. The store is one SQLite
// database, <dataDir>/memory/memory.db (directory 0700, files 0600, WAL mode,
// secure_delete on for every connection), and one key file, <dataDir>/memory.kek.
//
// What is encrypted. Each memory's text is sealed with AES-256-GCM under its subject's
// 256-bit data key, with a random nonce and additional data binding tenant, subject and
// memory id ("sios-memory/1", length-prefixed fields), so a sealed text cannot be moved
// to another memory. Data keys are stored only wrapped (AES-256-GCM, additional data
// binding tenant and subject) by the node's key-encryption key (KEK): 32 random bytes in
// memory.kek, created 0600 on first use and refused if group or others may access it.
// No text is ever written to the database in plaintext. Tenant, subject, source,
// classification and creation time are stored in clear so that tenancy, clearance and
// retention can be enforced without keys.
//
// What the index holds. Search uses an FTS5 index (contentless: it keeps no copy of
// what it indexes) whose tokens are not words but keyed hashes of them: the text is
// lowercased and split on everything that is not a letter, mark or digit, and each
// word becomes the first 16 hex digits of HMAC-SHA256(tenant index key, word), where
// the tenant index key is HMAC-SHA256(KEK, "sios-memory-index/1\n" ‖ tenant). A second
// column holds a keyed token of the subject. Queries hash their words the same way, so
// BM25 ranks as usual while the index never holds a word, and one tenant's tokens
// never match another's. The index is eight FTS5 tables (parts, fts0 … fts7); all of a
// subject's memories are in the part its subject token names, so that forgetting a
// subject rewrites one part (below). A search of a subject reads its part; a search of
// a tenant reads all eight and ranks their matches together, each scored by its own
// part's BM25 (see Search). Search returns only the tenant's memories classified at or
// below the caller's clearance (no read up). Ranking is BM25 over the query's rarer
// words; see Search for how common words are treated to keep a search's cost bounded.
//
// What Forget guarantees, and how. Forget deletes, in one SQLite transaction, the
// subject's memory rows, their index entries and the subject's wrapped data key
// (crypto-shredding: any ciphertext that survived anywhere is unreadable without it),
// and writes a purge-pending marker. A contentless index can only delete an entry it
// is told the tokens of, so each memory is decrypted (its key still exists inside the
// transaction) and its tokens are made again and named in an FTS5 'delete', which
// writes delete markers; that is right only if they are the tokens made when it was
// added, so the index records the tokenizer's version and is rebuilt from the texts
// whenever a store meets a build that tokenizes differently (and, once, to leave the
// contentless_delete table of earlier versions, whose tombstones made the merge below
// check every entry of the index). A memory that does not decrypt makes Forget rebuild
// the index without it. After commit the purge runs: FTS5 'optimize' merges each part
// the delete wrote to into one new segment, dropping the deleted entries with their
// markers, so no page of the part written before the delete is still in use (the
// other parts never held the entries; which parts are to be merged is recorded with
// the purge-pending marker); PRAGMA secure_delete has zeroed every
// freed page and every deleted cell; wal_checkpoint(TRUNCATE) copies the newest pages
// into the database and truncates the WAL, which held older copies. secure_delete does
// not reach one place: when SQLite rebalances a b-tree it may rebuild a page leaving
// the bytes of cells that moved elsewhere in the page's unused space, where they
// outlive their deletion; so the purge then reads the database file and zeroes, through
// sqlite_dbpage, the unused space of every b-tree page in which it is not zero, and
// checkpoints again. Only then is the marker cleared. Open re-runs a pending purge, so
// a crash (kill -9) at any point leaves the subject either untouched (crash before
// commit) or, once the store is opened again, completely forgotten. No VACUUM is
// needed. After Forget returns, no run of the forgotten text, its ciphertext, its
// index tokens, its subject or its source remains in any file under the data
// directory; the tests check every 8-byte run, in live pages, free pages, unused
// space and the WAL, including after bulk loads. The merge costs time in proportion to
// the part, not to what is forgotten: a forget of 1,000 memories in a store of
// 100,000 took 163–219 ms on a two-core machine, against 382–466 ms when the index
// was one table (most of it the merge); the rest is the deletes, the checkpoints and
// the scrub, which reads the whole file. FTS5's own
// 'secure-delete' option, which removes entries in place instead, is not used: it took
// longer (1.9 s for the same forget) and leaves a leaf page's separator in the part's
// %_idx table when
// it deletes the page's first term — a few hex digits of a forgotten token, which with
// the tenant's index key narrow a dictionary to a word or two (the tests check that
// every separator begins a term that remains). Temporary
// tables live in memory (temp_store=MEMORY). Outside the store's control: copies the
// file system or the disk keep of blocks SQLite overwrote, and backups.
//
// Expire applies retention periods (per tenant, per classification; the shorter wins)
// through the same path. Export returns everything held about a subject, decrypted.
// Callers audit Forget, Expire and Export; the store returns the ids they need for it.
package memory
