//! Avro: the `.avsc` schemas under `schemas/avro/`, and single-object encoding of events, of
//! each kind's data record and (through [`crate::ledger`]) of ledger entries.
//!
//! Who calls it: producers (encode an event's data for a Kafka value), the processor (decode
//! raw values, encode ledger entries), sinks and `verify` (decode ledger entries).
//!
//! Invariants:
//! * The schemas are the files in `schemas/avro/`, embedded with `include_str!`; a file names
//!   other files' types by full name (`io.provenant.v1.Sha256`), and [`SchemaId::schema_json`]
//!   inlines each at its first use, so every schema here is self-contained and its
//!   fingerprint covers every type it uses.
//! * Single-object encoding, as the Avro specification defines it: `C3 01`, the 8-byte
//!   little-endian CRC-64-AVRO (Rabin) fingerprint of the writer schema's Parsing Canonical
//!   Form, then the Avro binary body. The fingerprints are constants here
//!   ([`SchemaId::fingerprint`]); a test recomputes them with `apache-avro` from the files, so a
//!   schema edit that changes the wire contract fails the build until the constant is changed
//!   on purpose (and `schemas/README.md`'s evolution rules are followed).
//! * The binary body is written and read by the small codec in this module, not by
//!   `apache-avro`'s generic `Value` codec: encoding a model value cannot fail (so
//!   [`encode_event`] returns bytes, not a `Result`), and decoding untrusted bytes never
//!   allocates more than the input's length (apache-avro 0.21 reserves a block's item count
//!   before reading the items, and reads a truncated string as `null`). The tests check the
//!   codec against `apache-avro` both ways on generated values, byte for byte.
//! * Decoding never panics. Every failure is an [`EventError`] with [`ErrorCode::InvalidAvro`]
//!   (or [`ErrorCode::TooLarge`]), saying which schema was expected and, where it applies,
//!   which field failed and at which byte — never a value. A wrong fingerprint names the
//!   schema it expected and, if it is one of Provenant's, the schema it found.
//! * Decoded input is strict: trailing bytes, overlong varints, map keys given twice, union
//!   and enum indexes out of range, invalid UTF-8 are all refused. Decoded events are
//!   validated like JSON ones ([`Event::validate`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use apache_avro::Schema;
use serde_json::Value;

use crate::error::{ErrorCode, EventError};
use crate::event::{
    Annotations, Approval, Artifact, Build, Data, Dataset, Decision, Deploy, Event, EventData, Job,
    Kind, RunState, Runtime,
};
use crate::json::Limits;

/// The two magic bytes of Avro single-object encoding (format version 1).
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
/// Length of the single-object header: magic and fingerprint.
pub const HEADER_LEN: usize = 10;

/// Every schema Provenant writes with single-object encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchemaId {
    /// `io.provenant.v1.Event`: a whole event (envelope and data).
    Event,
    /// `io.provenant.v1.<Kind>Data`: one kind's data record (a binary-mode Kafka value).
    Data(Kind),
    /// `io.provenant.v1.LedgerRecord`: one chained ledger record (archive segments).
    LedgerRecord,
    /// The ledger topic's value: a union of `io.provenant.v1.LedgerRecord` and
    /// `io.provenant.v1.Fence`.
    LedgerEntry,
}

impl SchemaId {
    /// Every schema, in a fixed order.
    pub const ALL: [SchemaId; 9] = [
        SchemaId::Event,
        SchemaId::Data(Kind::Build),
        SchemaId::Data(Kind::Artifact),
        SchemaId::Data(Kind::Deploy),
        SchemaId::Data(Kind::Runtime),
        SchemaId::Data(Kind::Data),
        SchemaId::Data(Kind::Approval),
        SchemaId::LedgerRecord,
        SchemaId::LedgerEntry,
    ];

    /// The schema's full name as used in errors and docs.
    pub fn name(self) -> &'static str {
        match self {
            SchemaId::Event => "io.provenant.v1.Event",
            SchemaId::Data(kind) => data_record_name(kind),
            SchemaId::LedgerRecord => "io.provenant.v1.LedgerRecord",
            SchemaId::LedgerEntry => "io.provenant.v1.LedgerRecord|io.provenant.v1.Fence",
        }
    }

    /// The CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, in the
    /// little-endian byte order of the single-object header.
    pub fn fingerprint(self) -> [u8; 8] {
        match self {
            SchemaId::Event => 0x3c66_7b34_df8e_79ed_u64,
            SchemaId::Data(Kind::Build) => 0xd3e5_8e31_d36e_57af,
            SchemaId::Data(Kind::Artifact) => 0x7870_4541_28fc_1e93,
            SchemaId::Data(Kind::Deploy) => 0x5699_c3d5_4d61_f018,
            SchemaId::Data(Kind::Runtime) => 0x17f5_8c97_0cf7_f4c6,
            SchemaId::Data(Kind::Data) => 0xbba7_9852_ab42_649f,
            SchemaId::Data(Kind::Approval) => 0x040a_9492_dee5_f42a,
            SchemaId::LedgerRecord => 0xe666_1af2_0db8_06bf,
            SchemaId::LedgerEntry => 0x835f_bbe4_dde1_13ef,
        }
        .to_le_bytes()
    }

    /// The schema whose fingerprint this is, if it is one of Provenant's.
    pub fn from_fingerprint(fingerprint: [u8; 8]) -> Option<SchemaId> {
        SchemaId::ALL
            .into_iter()
            .find(|id| id.fingerprint() == fingerprint)
    }

    /// The 10-byte single-object header.
    pub fn header(self) -> [u8; HEADER_LEN] {
        let fp = self.fingerprint();
        [
            MAGIC[0], MAGIC[1], fp[0], fp[1], fp[2], fp[3], fp[4], fp[5], fp[6], fp[7],
        ]
    }

    /// The self-contained schema as JSON: the `.avsc` file with every type it names from
    /// another file inlined at its first use.
    pub fn schema_json(self) -> Result<Value, String> {
        match self {
            SchemaId::LedgerEntry => {
                let root: Value = serde_json::from_str(LEDGER_ENTRY_AVSC)
                    .map_err(|e| format!("ledger_entry.avsc: {e}"))?;
                inline(&root, &mut BTreeSet::new())
            }
            other => inline(&Value::String(other.name().into()), &mut BTreeSet::new()),
        }
    }

    /// The parsed schema (parsed once, on first use).
    pub fn schema(self) -> Result<&'static Schema, EventError> {
        let loaded = SCHEMAS.as_ref().map_err(|e| {
            EventError::input(
                ErrorCode::InvalidAvro,
                format!("Provenant's embedded Avro schemas do not load ({e}); this is a bug"),
            )
        })?;
        let found = loaded.iter().find(|(id, _)| *id == self).map(|(_, s)| s);
        found.ok_or_else(|| {
            EventError::input(
                ErrorCode::InvalidAvro,
                format!("no embedded schema {}; this is a bug", self.name()),
            )
        })
    }
}

fn data_record_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Build => "io.provenant.v1.BuildData",
        Kind::Artifact => "io.provenant.v1.ArtifactData",
        Kind::Deploy => "io.provenant.v1.DeployData",
        Kind::Runtime => "io.provenant.v1.RuntimeData",
        Kind::Data => "io.provenant.v1.DataData",
        Kind::Approval => "io.provenant.v1.ApprovalData",
    }
}

const LEDGER_ENTRY_AVSC: &str = include_str!("../avro/ledger_entry.avsc");

/// The named types defined by a file of their own, by full name.
const FILES: [(&str, &str); 10] = [
    (
        "io.provenant.v1.BuildData",
        include_str!("../avro/build.avsc"),
    ),
    (
        "io.provenant.v1.ArtifactData",
        include_str!("../avro/artifact.avsc"),
    ),
    (
        "io.provenant.v1.DeployData",
        include_str!("../avro/deploy.avsc"),
    ),
    (
        "io.provenant.v1.RuntimeData",
        include_str!("../avro/runtime.avsc"),
    ),
    (
        "io.provenant.v1.DataData",
        include_str!("../avro/data.avsc"),
    ),
    (
        "io.provenant.v1.ApprovalData",
        include_str!("../avro/approval.avsc"),
    ),
    ("io.provenant.v1.Event", include_str!("../avro/event.avsc")),
    (
        "io.provenant.v1.Sha256",
        include_str!("../avro/sha256.avsc"),
    ),
    ("io.provenant.v1.Fence", include_str!("../avro/fence.avsc")),
    (
        "io.provenant.v1.LedgerRecord",
        include_str!("../avro/ledger_record.avsc"),
    ),
];

/// Replaces the first use of each file-level type name (in a type position) by the file's
/// definition, recursively; later uses stay names, as Avro requires.
fn inline(v: &Value, defined: &mut BTreeSet<String>) -> Result<Value, String> {
    match v {
        Value::String(name) => {
            let Some((_, text)) = FILES.iter().find(|(n, _)| n == name) else {
                return Ok(v.clone());
            };
            if !defined.insert(name.clone()) {
                return Ok(v.clone());
            }
            let def: Value = serde_json::from_str(text).map_err(|e| format!("{name}: {e}"))?;
            inline(&def, defined)
        }
        Value::Array(branches) => branches
            .iter()
            .map(|b| inline(b, defined))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(obj) => {
            let mut out = obj.clone();
            for key in ["type", "items", "values"] {
                if let Some(t) = obj.get(key) {
                    out.insert(key.into(), inline(t, defined)?);
                }
            }
            if let Some(Value::Array(fields)) = obj.get("fields") {
                let mut new_fields = Vec::with_capacity(fields.len());
                for field in fields {
                    let mut f = field.clone();
                    if let (Value::Object(fo), Some(t)) = (&mut f, field.get("type")) {
                        fo.insert("type".into(), inline(t, defined)?);
                    }
                    new_fields.push(f);
                }
                out.insert("fields".into(), Value::Array(new_fields));
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

static SCHEMAS: LazyLock<Result<Vec<(SchemaId, Schema)>, String>> = LazyLock::new(|| {
    SchemaId::ALL
        .into_iter()
        .map(|id| {
            let json = id.schema_json()?;
            let schema = Schema::parse(&json).map_err(|e| format!("{}: {e}", id.name()))?;
            Ok((id, schema))
        })
        .collect()
});

// ---------------------------------------------------------------------------------------------
// Single-object framing

/// Splits a single-object encoded value into its schema and body, checking the magic and that
/// the fingerprint is `expected`'s.
pub fn split_header(bytes: &[u8], expected: SchemaId) -> Result<&[u8], EventError> {
    let (header, body) = match (bytes.get(..HEADER_LEN), bytes.get(HEADER_LEN..)) {
        (Some(h), Some(b)) => (h, b),
        _ => {
            return Err(EventError::input(
                ErrorCode::InvalidAvro,
                format!(
                    "Avro value is {} bytes, shorter than the 10-byte single-object header (expected {})",
                    bytes.len(),
                    expected.name()
                ),
            ));
        }
    };
    if header.get(..2) != Some(&MAGIC[..]) {
        return Err(EventError::input(
            ErrorCode::InvalidAvro,
            format!(
                "not Avro single-object encoding: it must start with C3 01 (expected {})",
                expected.name()
            ),
        ));
    }
    let fp = fingerprint_of(header);
    if fp != Some(expected.fingerprint()) {
        let found = match fp.and_then(SchemaId::from_fingerprint) {
            Some(id) => format!("a value of {}", id.name()),
            None => format!(
                "unknown schema fingerprint {}",
                hex::encode(header.get(2..).unwrap_or_default())
            ),
        };
        return Err(EventError::input(
            ErrorCode::InvalidAvro,
            format!(
                "Avro value was written with {found}, expected {} (fingerprint {})",
                expected.name(),
                hex::encode(expected.fingerprint())
            ),
        ));
    }
    Ok(body)
}

/// The schema a single-object encoded value says it was written with, if it is one of
/// Provenant's (`None` for other bytes).
pub fn schema_of(bytes: &[u8]) -> Option<SchemaId> {
    let header = bytes.get(..HEADER_LEN)?;
    if header.get(..2)? != MAGIC {
        return None;
    }
    SchemaId::from_fingerprint(fingerprint_of(header)?)
}

fn fingerprint_of(header: &[u8]) -> Option<[u8; 8]> {
    header.get(2..HEADER_LEN)?.try_into().ok()
}

// ---------------------------------------------------------------------------------------------
// Public encode / decode

/// Single-object encoding of a whole event (`io.provenant.v1.Event`).
pub fn encode_event(event: &Event) -> Vec<u8> {
    let mut w = Writer::with_header(SchemaId::Event);
    write_event(&mut w, event);
    w.into_bytes()
}

/// Decodes and validates a single-object encoded `io.provenant.v1.Event`.
pub fn decode_event(bytes: &[u8], limits: &Limits) -> Result<Event, EventError> {
    check_size(bytes, limits)?;
    let body = split_header(bytes, SchemaId::Event)?;
    let mut r = Reader::new(body, SchemaId::Event);
    let event = read_event(&mut r)?;
    r.finish()?;
    event.validate(limits)?;
    Ok(event)
}

/// Single-object encoding of an event's data alone, with its kind's data record schema (the
/// value of a binary-mode Kafka record).
pub fn encode_data(data: &EventData) -> Vec<u8> {
    let mut w = Writer::with_header(SchemaId::Data(data.kind()));
    write_data(&mut w, data);
    w.into_bytes()
}

/// Decodes a single-object encoded data record of `kind`. The fingerprint must be that
/// kind's. The data is checked structurally here; its field rules are checked when it is part
/// of an event ([`Event::validate`]).
pub fn decode_data(kind: Kind, bytes: &[u8], limits: &Limits) -> Result<EventData, EventError> {
    check_size(bytes, limits)?;
    let id = SchemaId::Data(kind);
    let body = split_header(bytes, id)?;
    let mut r = Reader::new(body, id);
    let data = read_data(&mut r, kind)?;
    r.finish()?;
    Ok(data)
}

fn check_size(bytes: &[u8], limits: &Limits) -> Result<(), EventError> {
    if bytes.len() > limits.max_event_bytes {
        return Err(EventError::input(
            ErrorCode::TooLarge,
            format!(
                "Avro value is {} bytes, over the limit of {} bytes",
                bytes.len(),
                limits.max_event_bytes
            ),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The binary codec (Avro specification, "Binary Encoding")

/// Writes Avro binary encoding. Writing to a `Vec` cannot fail.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_header(id: SchemaId) -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(&id.header());
        Self { buf }
    }

    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// `long` (and `int`): zig-zag, then variable-length base 128.
    pub(crate) fn long(&mut self, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                self.buf.push(byte);
                return;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub(crate) fn int(&mut self, v: i32) {
        self.long(i64::from(v));
    }

    /// A count (string length, block size, union or enum index).
    pub(crate) fn count(&mut self, n: usize) {
        // A Vec never holds more than isize::MAX bytes, so every length fits in an i64.
        self.long(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn string(&mut self, s: &str) {
        self.count(s.len());
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub(crate) fn fixed(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// `["null", "string"]`.
    pub(crate) fn opt_string(&mut self, s: Option<&str>) {
        match s {
            None => self.count(0),
            Some(s) => {
                self.count(1);
                self.string(s);
            }
        }
    }

    /// `["null", "long"]`.
    pub(crate) fn opt_long(&mut self, v: Option<i64>) {
        match v {
            None => self.count(0),
            Some(v) => {
                self.count(1);
                self.long(v);
            }
        }
    }

    /// `["null", "int"]`.
    pub(crate) fn opt_int(&mut self, v: Option<i32>) {
        self.opt_long(v.map(i64::from));
    }

    /// `["null", fixed]`.
    pub(crate) fn opt_fixed(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.count(0),
            Some(v) => {
                self.count(1);
                self.fixed(v);
            }
        }
    }

    /// `{"type": "map", "values": "string"}`: one block, then the empty block.
    pub(crate) fn string_map(&mut self, m: &BTreeMap<String, String>) {
        if !m.is_empty() {
            self.count(m.len());
            for (k, v) in m {
                self.string(k);
                self.string(v);
            }
        }
        self.count(0);
    }

    /// An array: one block, then the empty block.
    pub(crate) fn array<T>(&mut self, items: &[T], mut each: impl FnMut(&mut Self, &T)) {
        if !items.is_empty() {
            self.count(items.len());
            for item in items {
                each(self, item);
            }
        }
        self.count(0);
    }
}

/// Reads Avro binary encoding from untrusted bytes: every length is checked against what is
/// left before anything is allocated.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    schema: SchemaId,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], schema: SchemaId) -> Self {
        Self {
            buf,
            pos: 0,
            schema,
        }
    }

    pub(crate) fn error(&self, field: &str, what: &str) -> EventError {
        EventError::field(
            ErrorCode::InvalidAvro,
            field,
            format!(
                "Avro value of {} does not decode: {field}: {what} (at byte {} of the body)",
                self.schema.name(),
                self.pos
            ),
        )
    }

    /// How many bytes have been read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn byte(&mut self, field: &str) -> Result<u8, EventError> {
        let b = self
            .buf
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(field, "input ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    pub(crate) fn long(&mut self, field: &str) -> Result<i64, EventError> {
        // One byte, the common case (lengths under 64, union and enum indexes, block counts).
        if let Some(&b) = self.buf.get(self.pos)
            && b & 0x80 == 0
        {
            self.pos += 1;
            let z = u64::from(b);
            return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
        }
        let mut z: u64 = 0;
        for i in 0..10u32 {
            let b = self.byte(field)?;
            let bits = u64::from(b & 0x7f);
            if i == 9 && b > 1 {
                return Err(self.error(field, "varint overflows a long"));
            }
            z |= bits << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(self.error(field, "varint is not in its shortest form"));
                }
                return Ok(((z >> 1) as i64) ^ -((z & 1) as i64));
            }
        }
        Err(self.error(field, "varint is longer than 10 bytes"))
    }

    pub(crate) fn int(&mut self, field: &str) -> Result<i32, EventError> {
        let v = self.long(field)?;
        i32::try_from(v).map_err(|_| self.error(field, "int out of range"))
    }

    fn len(&mut self, field: &str) -> Result<usize, EventError> {
        let n = self.long(field)?;
        let n = usize::try_from(n).map_err(|_| self.error(field, "negative length"))?;
        if n > self.remaining() {
            return Err(self.error(field, "length goes past the end of the input"));
        }
        Ok(n)
    }

    pub(crate) fn string(&mut self, field: &str) -> Result<String, EventError> {
        self.str(field).map(str::to_owned)
    }

    /// A string, borrowed from the input.
    pub(crate) fn str(&mut self, field: &str) -> Result<&'a str, EventError> {
        let n = self.len(field)?;
        let end = self.pos + n;
        let bytes = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| self.error(field, "input ends early"))?;
        let s = std::str::from_utf8(bytes)
            .map_err(|_| self.error(field, "string is not valid UTF-8"))?;
        self.pos = end;
        Ok(s)
    }

    /// `["null", "string"]`, borrowed from the input.
    pub(crate) fn opt_str(&mut self, field: &str) -> Result<Option<&'a str>, EventError> {
        if self.present(field)? {
            self.str(field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn fixed<const N: usize>(&mut self, field: &str) -> Result<[u8; N], EventError> {
        let end = self.pos + N;
        let out: [u8; N] = self
            .buf
            .get(self.pos..end)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| self.error(field, "input ends early"))?;
        self.pos = end;
        Ok(out)
    }

    /// A union or enum index, which must be below `n`.
    pub(crate) fn index(&mut self, field: &str, n: usize) -> Result<usize, EventError> {
        let i = self.long(field)?;
        match usize::try_from(i) {
            Ok(i) if i < n => Ok(i),
            _ => Err(self.error(field, "union or enum index out of range")),
        }
    }

    /// `["null", T]`: whether the value is present.
    pub(crate) fn present(&mut self, field: &str) -> Result<bool, EventError> {
        Ok(self.index(field, 2)? == 1)
    }

    pub(crate) fn opt_string(&mut self, field: &str) -> Result<Option<String>, EventError> {
        if self.present(field)? {
            self.string(field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn opt_long(&mut self, field: &str) -> Result<Option<i64>, EventError> {
        if self.present(field)? {
            self.long(field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn opt_int(&mut self, field: &str) -> Result<Option<i32>, EventError> {
        if self.present(field)? {
            self.int(field).map(Some)
        } else {
            Ok(None)
        }
    }

    pub(crate) fn opt_fixed<const N: usize>(
        &mut self,
        field: &str,
    ) -> Result<Option<[u8; N]>, EventError> {
        if self.present(field)? {
            self.fixed(field).map(Some)
        } else {
            Ok(None)
        }
    }

    /// The item count of the next block (0 ends the array or map). Every item of Provenant's
    /// schemas takes at least one byte, so a count above the bytes left is refused.
    pub(crate) fn block(&mut self, field: &str) -> Result<usize, EventError> {
        let n = self.long(field)?;
        let n = if n < 0 {
            // A negative count is followed by the block's size in bytes.
            let size = self.long(field)?;
            if size < 0 {
                return Err(self.error(field, "negative block size"));
            }
            n.checked_neg()
                .ok_or_else(|| self.error(field, "block count out of range"))?
        } else {
            n
        };
        let n = usize::try_from(n).map_err(|_| self.error(field, "block count out of range"))?;
        if n > self.remaining() {
            return Err(self.error(field, "block count goes past the end of the input"));
        }
        Ok(n)
    }

    pub(crate) fn string_map(
        &mut self,
        field: &str,
    ) -> Result<BTreeMap<String, String>, EventError> {
        let mut out = BTreeMap::new();
        loop {
            let n = self.block(field)?;
            if n == 0 {
                return Ok(out);
            }
            for _ in 0..n {
                let k = self.string(field)?;
                let v = self.string(field)?;
                if out.insert(k, v).is_some() {
                    return Err(self.error(field, "map has a key twice"));
                }
            }
        }
    }

    pub(crate) fn array<T>(
        &mut self,
        field: &str,
        mut each: impl FnMut(&mut Self) -> Result<T, EventError>,
    ) -> Result<Vec<T>, EventError> {
        let mut out = Vec::new();
        loop {
            let n = self.block(field)?;
            if n == 0 {
                return Ok(out);
            }
            for _ in 0..n {
                out.push(each(self)?);
            }
        }
    }

    /// Checks that the whole input was read.
    pub(crate) fn finish(self) -> Result<(), EventError> {
        if self.remaining() != 0 {
            return Err(self.error("(end)", "trailing bytes after the value"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Events and data records

pub(crate) fn write_event(w: &mut Writer, e: &Event) {
    w.string(&e.id);
    w.string(&e.source);
    w.opt_string(e.time.as_deref());
    w.opt_string(e.subject.as_deref());
    w.opt_string(e.dataschema.as_deref());
    w.string_map(&e.extensions);
    w.opt_string(e.mapped_from.as_deref());
    w.count(kind_index(e.kind()));
    write_data(w, &e.data);
}

pub(crate) fn read_event(r: &mut Reader<'_>) -> Result<Event, EventError> {
    let id = r.string("id")?;
    let source = r.string("source")?;
    let time = r.opt_string("time")?;
    let subject = r.opt_string("subject")?;
    let dataschema = r.opt_string("dataschema")?;
    let extensions = r.string_map("extensions")?;
    let mapped_from = r.opt_string("mapped_from")?;
    let branch = r.index("data", Kind::ALL.len())?;
    let kind = Kind::ALL
        .get(branch)
        .copied()
        .ok_or_else(|| r.error("data", "union index out of range"))?;
    let data = read_data(r, kind)?;
    Ok(Event {
        id,
        source,
        time,
        subject,
        dataschema,
        extensions,
        mapped_from,
        data,
    })
}

/// The branch of `Event.data` for a kind (the order of [`Kind::ALL`]).
fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

fn write_annotations(w: &mut Writer, a: &Annotations) {
    w.string_map(a);
}

pub(crate) fn write_data(w: &mut Writer, data: &EventData) {
    match data {
        EventData::Build(b) => {
            w.string(&b.commit_sha);
            w.opt_string(b.branch.as_deref());
            w.string(&b.build_id);
            w.string(&b.build_timestamp);
            w.opt_string(b.actor.as_deref());
            w.opt_string(b.pipeline_url.as_deref());
            w.opt_string(b.repo_url.as_deref());
            w.opt_string(b.artifact_digest.as_deref());
            w.opt_string(b.signature.as_deref());
            write_annotations(w, &b.annotations);
        }
        EventData::Artifact(a) => {
            w.string(&a.artifact_digest);
            w.opt_string(a.build_id.as_deref());
            w.opt_string(a.commit_sha.as_deref());
            w.opt_string(a.name.as_deref());
            w.opt_string(a.signature.as_deref());
            write_annotations(w, &a.annotations);
        }
        EventData::Deploy(d) => {
            w.string(&d.deploy_id);
            w.string(&d.artifact_digest);
            w.string(&d.environment);
            w.string(&d.service);
            w.string(&d.deploy_timestamp);
            w.opt_string(d.actor.as_deref());
            w.opt_string(d.config_hash.as_deref());
            w.opt_string(d.previous_deploy_id.as_deref());
            w.opt_string(d.pipeline_url.as_deref());
            write_annotations(w, &d.annotations);
        }
        EventData::Runtime(rt) => {
            w.string(&rt.instance_id);
            w.string(&rt.service);
            w.string(&rt.environment);
            w.opt_string(rt.deploy_id.as_deref());
            w.opt_string(rt.artifact_digest.as_deref());
            w.opt_string(rt.trace_id.as_deref());
            w.opt_string(rt.message.as_deref());
            write_annotations(w, &rt.annotations);
        }
        EventData::Data(d) => {
            w.string(&d.job.namespace);
            w.string(&d.job.name);
            w.string(&d.run_id);
            w.count(
                RunState::ALL
                    .iter()
                    .position(|s| *s == d.event_type)
                    .unwrap_or(0),
            );
            w.array(&d.inputs, write_dataset);
            w.array(&d.outputs, write_dataset);
            write_annotations(w, &d.annotations);
        }
        EventData::Approval(a) => {
            w.string(&a.approval_id);
            w.opt_string(a.deploy_id.as_deref());
            w.opt_string(a.artifact_digest.as_deref());
            w.string(&a.environment);
            w.count(match a.decision {
                Decision::Approved => 0,
                Decision::Rejected => 1,
            });
            w.string(&a.approver);
            w.opt_string(a.reason.as_deref());
            w.opt_string(a.policy.as_deref());
            write_annotations(w, &a.annotations);
        }
    }
}

fn write_dataset(w: &mut Writer, ds: &Dataset) {
    w.string(&ds.namespace);
    w.string(&ds.name);
    w.opt_string(ds.snapshot_id.as_deref());
    w.opt_string(ds.schema_version.as_deref());
}

fn read_dataset(r: &mut Reader<'_>, which: &str) -> Result<Dataset, EventError> {
    Ok(Dataset {
        namespace: r.string(&format!("data.{which}.namespace"))?,
        name: r.string(&format!("data.{which}.name"))?,
        snapshot_id: r.opt_string(&format!("data.{which}.snapshot_id"))?,
        schema_version: r.opt_string(&format!("data.{which}.schema_version"))?,
    })
}

pub(crate) fn read_data(r: &mut Reader<'_>, kind: Kind) -> Result<EventData, EventError> {
    Ok(match kind {
        Kind::Build => EventData::Build(Build {
            commit_sha: r.string("data.commit_sha")?,
            branch: r.opt_string("data.branch")?,
            build_id: r.string("data.build_id")?,
            build_timestamp: r.string("data.build_timestamp")?,
            actor: r.opt_string("data.actor")?,
            pipeline_url: r.opt_string("data.pipeline_url")?,
            repo_url: r.opt_string("data.repo_url")?,
            artifact_digest: r.opt_string("data.artifact_digest")?,
            signature: r.opt_string("data.signature")?,
            annotations: r.string_map("data.annotations")?,
        }),
        Kind::Artifact => EventData::Artifact(Artifact {
            artifact_digest: r.string("data.artifact_digest")?,
            build_id: r.opt_string("data.build_id")?,
            commit_sha: r.opt_string("data.commit_sha")?,
            name: r.opt_string("data.name")?,
            signature: r.opt_string("data.signature")?,
            annotations: r.string_map("data.annotations")?,
        }),
        Kind::Deploy => EventData::Deploy(Deploy {
            deploy_id: r.string("data.deploy_id")?,
            artifact_digest: r.string("data.artifact_digest")?,
            environment: r.string("data.environment")?,
            service: r.string("data.service")?,
            deploy_timestamp: r.string("data.deploy_timestamp")?,
            actor: r.opt_string("data.actor")?,
            config_hash: r.opt_string("data.config_hash")?,
            previous_deploy_id: r.opt_string("data.previous_deploy_id")?,
            pipeline_url: r.opt_string("data.pipeline_url")?,
            annotations: r.string_map("data.annotations")?,
        }),
        Kind::Runtime => EventData::Runtime(Runtime {
            instance_id: r.string("data.instance_id")?,
            service: r.string("data.service")?,
            environment: r.string("data.environment")?,
            deploy_id: r.opt_string("data.deploy_id")?,
            artifact_digest: r.opt_string("data.artifact_digest")?,
            trace_id: r.opt_string("data.trace_id")?,
            message: r.opt_string("data.message")?,
            annotations: r.string_map("data.annotations")?,
        }),
        Kind::Data => {
            let job = Job {
                namespace: r.string("data.job.namespace")?,
                name: r.string("data.job.name")?,
            };
            let run_id = r.string("data.run_id")?;
            let state = r.index("data.event_type", RunState::ALL.len())?;
            let event_type = RunState::ALL
                .get(state)
                .copied()
                .ok_or_else(|| r.error("data.event_type", "enum index out of range"))?;
            let inputs = r.array("data.inputs", |r| read_dataset(r, "inputs"))?;
            let outputs = r.array("data.outputs", |r| read_dataset(r, "outputs"))?;
            EventData::Data(Data {
                job,
                run_id,
                event_type,
                inputs,
                outputs,
                annotations: r.string_map("data.annotations")?,
            })
        }
        Kind::Approval => EventData::Approval(Approval {
            approval_id: r.string("data.approval_id")?,
            deploy_id: r.opt_string("data.deploy_id")?,
            artifact_digest: r.opt_string("data.artifact_digest")?,
            environment: r.string("data.environment")?,
            decision: match r.index("data.decision", 2)? {
                0 => Decision::Approved,
                _ => Decision::Rejected,
            },
            approver: r.string("data.approver")?,
            reason: r.opt_string("data.reason")?,
            policy: r.opt_string("data.policy")?,
            annotations: r.string_map("data.annotations")?,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::rabin::Rabin;

    #[test]
    fn fingerprint_constants_match_the_schema_files() {
        let mut wrong = Vec::new();
        for id in SchemaId::ALL {
            let schema = id.schema().unwrap();
            let fp = schema.fingerprint::<Rabin>().bytes;
            if fp != id.fingerprint() {
                let value = u64::from_le_bytes(fp.clone().try_into().unwrap());
                wrong.push(format!("{id:?} => 0x{value:016x}"));
            }
        }
        assert!(
            wrong.is_empty(),
            "schema files changed; follow schemas/README.md (evolution rules), then update: {wrong:#?}"
        );
    }

    #[test]
    fn fingerprints_are_distinct() {
        let set: BTreeSet<[u8; 8]> = SchemaId::ALL.iter().map(|id| id.fingerprint()).collect();
        assert_eq!(set.len(), SchemaId::ALL.len());
    }

    #[test]
    fn schemas_are_self_contained() {
        // Each schema parses on its own, without the others.
        for id in SchemaId::ALL {
            let json = id.schema_json().unwrap();
            Schema::parse_str(&json.to_string()).unwrap();
        }
    }

    #[test]
    fn varints_match_the_specification() {
        for (v, bytes) in [
            (0i64, vec![0x00]),
            (-1, vec![0x01]),
            (1, vec![0x02]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
            (
                i64::MAX,
                vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                i64::MIN,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut w = Writer::default();
            w.long(v);
            assert_eq!(w.buf, bytes, "{v}");
            let mut r = Reader::new(&bytes, SchemaId::Event);
            assert_eq!(r.long("x").unwrap(), v);
            r.finish().unwrap();
        }
        for bad in [
            vec![0x80],
            vec![0x80, 0x00],
            vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
            vec![0xff; 11],
        ] {
            let mut r = Reader::new(&bad, SchemaId::Event);
            assert!(r.long("x").is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_errors_name_the_expected_schema() {
        let e = decode_event(b"{\"id\":1}", &Limits::DEFAULT).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAvro);
        assert!(e.message.contains("io.provenant.v1.Event"), "{e}");
        let mut data = SchemaId::Data(Kind::Build).header().to_vec();
        data.push(0);
        let e = decode_event(&data, &Limits::DEFAULT).unwrap_err();
        assert!(
            e.message.contains(
                "written with a value of io.provenant.v1.BuildData, expected io.provenant.v1.Event"
            ),
            "{e}"
        );
        let e = decode_event(&[0xC3, 0x01, 1, 2], &Limits::DEFAULT).unwrap_err();
        assert!(e.message.contains("shorter than the 10-byte"), "{e}");
    }
}
