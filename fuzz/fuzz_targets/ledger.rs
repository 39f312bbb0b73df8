//! Ledger entries as sinks and `verify` read them: a `prov.ledger` value
//! (`LedgerEntry::from_avro`, single-object) and an archive datum
//! (`LedgerRecord::from_avro_datum`, no header). Never panics; an accepted record passes
//! `check`, survives its own encodings, has canonical bytes (the same from its JSON form), and
//! `verify_chain` accepts it exactly when its hash is right. `verify`'s fast path
//! (`hash_record_datum`, the hash straight from the datum) accepts exactly what the strict
//! prefix decoder accepts, with the same length and `compute_hash`'s hash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use provenant_schemas::canonical::{
    ChainHead, DatumScratch, canonical_bytes_of_json, hash_record_datum, record_json, verify_chain,
};
use provenant_schemas::{LedgerEntry, LedgerRecord};

fn record_holds(r: &LedgerRecord) {
    assert!(r.check().is_ok());
    assert_eq!(
        LedgerRecord::from_avro_datum(&r.to_avro_datum()).as_ref(),
        Ok(r)
    );
    let canonical = r.canonical_bytes();
    assert!(canonical.is_ok());
    assert_eq!(canonical_bytes_of_json(&record_json(r)), canonical);
    let Ok(hash) = r.compute_hash() else {
        panic!("a checked record has no hash");
    };
    let start = ChainHead {
        next_seq: r.seq,
        head_hash: r.prev_hash,
    };
    assert_eq!(
        verify_chain(start, std::slice::from_ref(r)).is_ok(),
        hash == r.hash
    );
}

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = LedgerEntry::from_avro(data) {
        assert_eq!(
            LedgerEntry::from_avro(&entry.to_avro()).as_ref(),
            Ok(&entry)
        );
        if let LedgerEntry::Record(r) = &entry {
            record_holds(r);
        }
    }
    if let Ok(r) = LedgerRecord::from_avro_datum(data) {
        record_holds(&r);
    }
    let fast = hash_record_datum(data, &mut DatumScratch::default());
    match LedgerRecord::from_avro_datum_prefix(data) {
        Ok((r, len)) => {
            let Ok(d) = fast else {
                panic!("the strict decoder accepts a datum that hash_record_datum refuses");
            };
            assert_eq!(d.len, len);
            assert_eq!(Ok(d.computed), r.compute_hash());
            assert_eq!((d.seq, d.prev_hash, d.hash), (r.seq, r.prev_hash, r.hash));
        }
        Err(_) => assert!(fast.is_err()),
    }
});
