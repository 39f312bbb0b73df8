//! RFC 6962 (Certificate Transparency) Merkle trees over a partition's record hashes.
//!
//! ```text
//! leaf hash  = SHA-256(0x00 ‖ record hash)          (the leaf data is the 32-byte record hash)
//! node hash  = SHA-256(0x01 ‖ left ‖ right)
//! MTH({})    = SHA-256("")
//! MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n
//! ```
//!
//! Three tools live here:
//! * [`Frontier`]: the compact range of a tree — one hash per set bit of its size, O(log n) —
//!   which the sink keeps per partition to append leaves and compute roots without holding
//!   every hash, and which each manifest records so that a restart resumes it;
//! * proof generation over a slice of leaf hashes ([`inclusion_proof`],
//!   [`consistency_proof`]): RFC 6962 §2.1.1 `PATH` and §2.1.2 `PROOF`;
//! * proof verification ([`verify_inclusion`], [`verify_consistency`]): the algorithms of
//!   RFC 9162 §2.1.3.2 and §2.1.4.2, which need nothing but the proof and the two roots.
//!
//! Invariants: nothing here panics or indexes out of bounds; a verifier returns `false` (never an
//! error) for any proof that does not prove the claim, including malformed sizes.

use sha2::{Digest, Sha256};

/// A 32-byte SHA-256 value: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// `SHA-256("")`: the root of the empty tree.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The RFC 6962 leaf hash of `data` (for the archive: a record's 32-byte hash).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// The RFC 6962 interior node hash.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The compact range `[0, size)` of a tree: the roots of its perfect subtrees, largest (leftmost)
/// first — one per set bit of `size`. Appending a leaf and computing the root are O(log n).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Frontier {
    size: u64,
    hashes: Vec<Hash>,
}

/// Why a [`Frontier`] could not be rebuilt from its parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("a Merkle frontier of tree size {size} has {found} hashes, expected {expected}")]
pub struct FrontierError {
    pub size: u64,
    pub found: usize,
    pub expected: u32,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a frontier from its size and its subtree roots (as [`Frontier::hashes`] gave).
    pub fn from_parts(size: u64, hashes: Vec<Hash>) -> Result<Self, FrontierError> {
        if hashes.len() != size.count_ones() as usize {
            return Err(FrontierError {
                size,
                found: hashes.len(),
                expected: size.count_ones(),
            });
        }
        Ok(Self { size, hashes })
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The perfect subtree roots, leftmost (largest) first.
    pub fn hashes(&self) -> &[Hash] {
        &self.hashes
    }

    /// Appends a leaf, given its leaf hash ([`leaf_hash`]).
    pub fn push_leaf_hash(&mut self, leaf: Hash) {
        let mut node = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            match self.hashes.pop() {
                Some(left) => node = node_hash(&left, &node),
                None => break,
            }
            size >>= 1;
        }
        self.hashes.push(node);
        self.size = self.size.saturating_add(1);
    }

    /// Appends a record: its leaf is the record hash.
    pub fn push_record_hash(&mut self, record_hash: &Hash) {
        self.push_leaf_hash(leaf_hash(record_hash));
    }

    /// The tree's root (MTH).
    pub fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

/// The largest power of two strictly below `n` (for n ≥ 2).
fn split(n: usize) -> usize {
    if n < 2 {
        return 0;
    }
    let mut k = 1usize;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH over leaf hashes (already hashed with [`leaf_hash`]).
pub fn root_of(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for l in leaves {
        f.push_leaf_hash(*l);
    }
    f.root()
}

/// The RFC 6962 audit path (`PATH(m, D[n])`) of leaf `index` in the tree of the first `size`
/// leaves, deepest sibling first. `None` if `index >= size` or `size > leaves.len()`.
pub fn inclusion_proof(leaves: &[Hash], index: u64, size: u64) -> Option<Vec<Hash>> {
    let size = usize::try_from(size).ok()?;
    let index = usize::try_from(index).ok()?;
    let tree = leaves.get(..size)?;
    if index >= size {
        return None;
    }
    let mut out = Vec::new();
    path(index, tree, &mut out);
    Some(out)
}

fn path(m: usize, d: &[Hash], out: &mut Vec<Hash>) {
    let n = d.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    let (left, right) = d.split_at(k);
    if m < k {
        path(m, left, out);
        out.push(root_of(right));
    } else {
        path(m - k, right, out);
        out.push(root_of(left));
    }
}

/// The RFC 6962 consistency proof (`PROOF(m, D[n])`) from the tree of the first `first` leaves
/// to the tree of the first `second`. Empty when `first` is 0 or equals `second`; `None` if
/// `first > second` or `second > leaves.len()`.
pub fn consistency_proof(leaves: &[Hash], first: u64, second: u64) -> Option<Vec<Hash>> {
    let m = usize::try_from(first).ok()?;
    let n = usize::try_from(second).ok()?;
    let tree = leaves.get(..n)?;
    if m > n {
        return None;
    }
    let mut out = Vec::new();
    if m > 0 && m < n {
        subproof(m, tree, true, &mut out);
    }
    Some(out)
}

fn subproof(m: usize, d: &[Hash], b: bool, out: &mut Vec<Hash>) {
    let n = d.len();
    if m == n {
        if !b {
            out.push(root_of(d));
        }
        return;
    }
    let k = split(n);
    let (left, right) = d.split_at(k);
    if m <= k {
        subproof(m, left, b, out);
        out.push(root_of(right));
    } else {
        subproof(m - k, right, false, out);
        out.push(root_of(left));
    }
}

/// Checks an audit path (RFC 9162 §2.1.3.2): leaf `leaf` (a leaf hash) is at `index` of the
/// tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

/// Checks a consistency proof (RFC 9162 §2.1.4.2): the tree of `second` leaves with root
/// `second_root` extends the tree of `first` leaves with root `first_root`. A tree of size 0 is
/// consistent with every tree (empty proof); equal sizes need equal roots and an empty proof.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    if first == 0 {
        return proof.is_empty() && *first_root == empty_root();
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((seed, rest)) = path.split_first() else {
        return false;
    };
    let mut fn_ = first - 1;
    let mut sn = second - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = *seed;
    let mut sr = *seed;
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &fr == first_root && &sr == second_root
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use super::*;

    fn h(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// The leaves of RFC 6962's reference tree (certificate-transparency / transparency-dev
    /// test data).
    fn ct_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|x| leaf_hash(&hex::decode(x).unwrap()))
        .collect()
    }

    /// MTH of the first n leaves, n = 0..=8.
    const CT_ROOTS: [&str; 9] = [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    #[test]
    fn reference_roots_for_every_size() {
        let leaves = ct_leaves();
        for (n, want) in CT_ROOTS.iter().enumerate() {
            assert_eq!(hex::encode(root_of(&leaves[..n])), *want, "size {n}");
            let mut f = Frontier::new();
            leaves[..n].iter().for_each(|l| f.push_leaf_hash(*l));
            assert_eq!(hex::encode(f.root()), *want, "frontier size {n}");
            assert_eq!(f.hashes().len(), (n as u64).count_ones() as usize);
        }
    }

    #[test]
    fn reference_inclusion_proofs() {
        let leaves = ct_leaves();
        let cases: [(u64, u64, [&str; 3]); 2] = [
            (
                0,
                8,
                [
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                [
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for (index, size, want) in cases {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            assert_eq!(inclusion_proof(&leaves, index, size).unwrap(), want);
            assert!(verify_inclusion(
                index,
                size,
                &leaves[index as usize],
                &want,
                &h(CT_ROOTS[size as usize])
            ));
        }
    }

    #[test]
    fn reference_consistency_proofs() {
        let leaves = ct_leaves();
        let cases: [(u64, u64, &[&str]); 3] = [
            (
                2,
                8,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for (m, n, want) in cases {
            let want: Vec<Hash> = want.iter().map(|x| h(x)).collect();
            assert_eq!(consistency_proof(&leaves, m, n).unwrap(), want, "{m}->{n}");
            assert!(verify_consistency(
                m,
                n,
                &h(CT_ROOTS[m as usize]),
                &h(CT_ROOTS[n as usize]),
                &want
            ));
        }
    }

    fn many(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(&Sha256::digest((i as u64).to_be_bytes())))
            .collect()
    }

    #[test]
    fn every_inclusion_proof_verifies_and_mangled_ones_do_not() {
        let leaves = many(70);
        for n in 1..=leaves.len() as u64 {
            let root = root_of(&leaves[..n as usize]);
            for i in 0..n {
                let proof = inclusion_proof(&leaves, i, n).unwrap();
                let leaf = &leaves[i as usize];
                assert!(verify_inclusion(i, n, leaf, &proof, &root), "{i}/{n}");
                assert!(!verify_inclusion(i, n, &[7; 32], &proof, &root));
                assert!(!verify_inclusion(i + 1, n, leaf, &proof, &root) || i + 1 >= n);
                assert!(!verify_inclusion(i, n, leaf, &proof, &[3; 32]));
                if let Some((last, rest)) = proof.split_last() {
                    assert!(
                        !verify_inclusion(i, n, leaf, rest, &root),
                        "truncated {i}/{n}"
                    );
                    let mut flipped = proof.clone();
                    flipped[rest.len()][0] ^= 1;
                    assert!(!verify_inclusion(i, n, leaf, &flipped, &root));
                    let mut extended = proof.clone();
                    extended.push(*last);
                    assert!(!verify_inclusion(i, n, leaf, &extended, &root));
                }
            }
            assert!(inclusion_proof(&leaves, n, n).is_none());
        }
    }

    #[test]
    fn every_consistency_proof_verifies_and_mangled_ones_do_not() {
        let leaves = many(70);
        let roots: Vec<Hash> = (0..=leaves.len()).map(|n| root_of(&leaves[..n])).collect();
        for n in 0..=leaves.len() as u64 {
            for m in 0..=n {
                let proof = consistency_proof(&leaves, m, n).unwrap();
                let (rm, rn) = (&roots[m as usize], &roots[n as usize]);
                assert!(verify_consistency(m, n, rm, rn, &proof), "{m}->{n}");
                if m > 0 && m < n {
                    assert!(!proof.is_empty());
                    // A different old root (a fork) or new root fails.
                    assert!(!verify_consistency(m, n, &[9; 32], rn, &proof), "{m}->{n}");
                    assert!(!verify_consistency(m, n, rm, &[9; 32], &proof), "{m}->{n}");
                    let mut flipped = proof.clone();
                    flipped[0][3] ^= 0x80;
                    assert!(!verify_consistency(m, n, rm, rn, &flipped));
                    assert!(!verify_consistency(m, n, rm, rn, &proof[..proof.len() - 1]));
                    let mut extended = proof.clone();
                    extended.push([0xcd; 32]);
                    assert!(!verify_consistency(m, n, rm, rn, &extended));
                    // Shrinking is never consistent.
                    assert!(!verify_consistency(n, m, rn, rm, &proof));
                }
            }
        }
        assert!(consistency_proof(&leaves, 5, 3).is_none());
    }

    #[test]
    fn frontier_round_trips_through_its_parts() {
        let leaves = many(37);
        let mut f = Frontier::new();
        for l in &leaves {
            f.push_leaf_hash(*l);
            let g = Frontier::from_parts(f.size(), f.hashes().to_vec()).unwrap();
            assert_eq!(g.root(), f.root());
        }
        assert!(Frontier::from_parts(3, vec![[0; 32]]).is_err());
    }
}
