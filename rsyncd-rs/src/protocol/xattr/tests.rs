#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;

fn done<T: std::fmt::Debug>(d: Decoded<T>, len: usize) -> T {
    match d {
        Decoded::Done { value, used } => {
            assert_eq!(used, len);
            value
        }
        other => panic!("{other:?}"),
    }
}

/// The wire form rsync 3.5.0's xattr-wire-cap test writes by hand: `varint 0` (literal),
/// `varint count`, then per element `varint name_len` (NUL included), `varint
/// datum_len`, the name; a value of 32 bytes or less follows whole.
#[test]
fn literal_list_known_bytes() {
    let bytes = [
        0x00, 0x02, // literal, two elements
        0x08, 0x02, b'u', b's', b'e', b'r', b'.', b'a', b'b', 0, b'h', b'i', // user.ab="hi"
        0x07, 0x80, 0x80, b'u', b's', b'e', b'r', b'.', b'z', 0, // user.z, 128 bytes
    ];
    let mut with_digest = bytes.to_vec();
    let long = vec![7u8; 128];
    with_digest.extend_from_slice(&xattr_digest(&long));
    let got = done(
        decode_xattr_block(&with_digest, 0).unwrap(),
        with_digest.len(),
    );
    let want = XattrList(vec![
        XattrItem::new(b"user.ab".to_vec(), b"hi"),
        XattrItem::new(b"user.z".to_vec(), &long),
    ]);
    assert_eq!(got, XattrBlock::Literal(want.clone()));
    let mut out = Vec::new();
    encode_xattr_block(None, &want, &mut out);
    assert_eq!(out, with_digest);
}

#[test]
fn empty_list_is_literal_then_cached() {
    assert_eq!(
        done(decode_xattr_block(&[0, 0], 0).unwrap(), 2),
        XattrBlock::Literal(XattrList::default())
    );
    assert_eq!(
        done(decode_xattr_block(&[1], 1).unwrap(), 1),
        XattrBlock::Cached(0)
    );
    let mut cache = XattrSendCache::default();
    let empty = Arc::new(XattrList::default());
    assert_eq!(cache.lookup_or_insert(&empty), None);
    assert_eq!(
        cache.lookup_or_insert(&Arc::new(XattrList::default())),
        Some(0)
    );
    let mut out = Vec::new();
    encode_xattr_block(Some(0), &empty, &mut out);
    assert_eq!(out, [1]);
}

#[test]
fn exactly_32_bytes_go_whole_33_abbreviated() {
    assert!(!XattrItem::new(b"user.a".to_vec(), &[1; 32]).is_abbrev());
    let long = XattrItem::new(b"user.a".to_vec(), &[1; 33]);
    assert!(long.is_abbrev());
    assert_eq!(long.datum_len(), 33);
    assert!(long.value_matches(&[1; 33]));
    assert!(!long.value_matches(&[2; 33]));
}

#[test]
fn hostile_blocks_are_refused() {
    // Index past the table.
    assert!(matches!(
        decode_xattr_block(&[2], 1),
        Err(XattrError::IndexOutOfRange { got: 2, len: 1 })
    ));
    // Negative index.
    assert!(decode_xattr_block(&[0xf0, 0xff, 0xff, 0xff, 0xff], 5).is_err());
    // Count over 65536: 0x10001 as a varint.
    assert_eq!(
        decode_xattr_block(&[0x00, 0xc1, 0x01, 0x00], 0),
        Err(XattrError::Count(65537))
    );
    // name_len 0 and 4097.
    assert_eq!(
        decode_xattr_block(&[0, 1, 0, 0], 0),
        Err(XattrError::NameLen(0))
    );
    assert_eq!(
        decode_xattr_block(&[0, 1, 0x90, 0x01, 0], 0),
        Err(XattrError::NameLen(4097))
    );
    // datum_len of 128 MiB + 1, as the 3.5.0 xattr-wire-cap test sends it.
    let mut b = vec![0, 1, 2];
    put_varint(&mut b, (128 << 20) + 1);
    b.extend_from_slice(b"x\0");
    assert_eq!(
        decode_xattr_block(&b, 0),
        Err(XattrError::ValueTooLarge((128 << 20) + 1))
    );
    // Name without its NUL, an empty name, one with an inner NUL.
    assert_eq!(
        decode_xattr_block(&[0, 1, 2, 0, b'a', b'b'], 0),
        Err(XattrError::MissingNul)
    );
    assert_eq!(
        decode_xattr_block(&[0, 1, 1, 0, 0], 0),
        Err(XattrError::BadName)
    );
    assert_eq!(
        decode_xattr_block(&[0, 1, 4, 0, b'a', 0, b'b', 0], 0),
        Err(XattrError::BadName)
    );
}

#[test]
fn a_huge_count_needs_bytes_not_memory() {
    // 65536 elements claimed, none sent: the decoder asks for more.
    let mut b = vec![0];
    put_varint(&mut b, 65536);
    assert!(matches!(decode_xattr_block(&b, 0), Ok(Decoded::Needed(_))));
}

#[test]
fn request_deltas_may_go_back() {
    let mut out = Vec::new();
    encode_xattr_request(&[3, 1, 5], &mut out);
    assert_eq!(out, [3, 0xf0, 0xfe, 0xff, 0xff, 0xff, 4, 0]);
    assert_eq!(
        done(decode_xattr_request(&out).unwrap(), out.len()),
        vec![3, 1, 5]
    );
    assert_eq!(
        done(decode_xattr_request(&[0]).unwrap(), 1),
        Vec::<i32>::new()
    );
    let mut over = Vec::new();
    put_varint(&mut over, i32::MAX);
    put_varint(&mut over, 1);
    assert_eq!(decode_xattr_request(&over), Err(XattrError::RelPosOverflow));
}

#[test]
fn response_round_trip_and_bounds() {
    let values = vec![(2, b"abc".to_vec()), (7, vec![9; 100])];
    let mut out = Vec::new();
    encode_xattr_response(&values, &mut out);
    assert_eq!(&out[..5], &[2, 3, b'a', b'b', b'c']);
    assert_eq!(
        done(decode_xattr_response(&out).unwrap(), out.len()),
        values
    );
    let mut big = vec![1];
    put_varint(&mut big, (128 << 20) + 1);
    assert_eq!(
        decode_xattr_response(&big),
        Err(XattrError::ValueTooLarge((128 << 20) + 1))
    );
    assert!(decode_xattr_response(&[1, 0xf0, 0xff, 0xff, 0xff, 0xff]).is_err());
}

fn arb_item() -> impl Strategy<Value = XattrItem> {
    (
        proptest::collection::vec(1u8..=255, 1..40),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
        .prop_map(|(name, value)| XattrItem::new(name, &value))
}

proptest! {
    #[test]
    fn block_round_trips(items in proptest::collection::vec(arb_item(), 0..8)) {
        let list = XattrList(items);
        let mut out = Vec::new();
        encode_xattr_block(None, &list, &mut out);
        let got = decode_xattr_block(&out, 0).unwrap();
        prop_assert_eq!(got, Decoded::Done { value: XattrBlock::Literal(list), used: out.len() });
    }

    #[test]
    fn split_input_needs_more_never_errs(items in proptest::collection::vec(arb_item(), 1..5), cut in any::<prop::sample::Index>()) {
        let mut out = Vec::new();
        encode_xattr_block(None, &XattrList(items), &mut out);
        let at = cut.index(out.len());
        prop_assert!(matches!(decode_xattr_block(&out[..at], 0), Ok(Decoded::Needed(_))));
    }

    #[test]
    fn exchange_round_trips(nums in proptest::collection::vec(1i32..70000, 0..20)) {
        // A request names each element once (a repeated number is a zero delta, the end
        // marker), as a generator builds it.
        let mut seen = std::collections::HashSet::new();
        let nums: Vec<i32> = nums.into_iter().filter(|n| seen.insert(*n)).collect();
        let mut out = Vec::new();
        encode_xattr_request(&nums, &mut out);
        prop_assert_eq!(decode_xattr_request(&out).unwrap(), Decoded::Done { value: nums.clone(), used: out.len() });
        let values: Vec<(i32, Vec<u8>)> = nums.iter().map(|&n| (n, vec![n as u8; (n % 50) as usize])).collect();
        let mut out = Vec::new();
        encode_xattr_response(&values, &mut out);
        prop_assert_eq!(decode_xattr_response(&out).unwrap(), Decoded::Done { value: values, used: out.len() });
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..256), cached in 0usize..4) {
        let _ = decode_xattr_block(&b, cached);
        let _ = decode_xattr_request(&b);
        let _ = decode_xattr_response(&b);
    }
}
