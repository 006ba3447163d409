//! The codeword: 48 payload bits followed by their CRC-16, most significant bit first.

/// Bits of payload: the recording id's 48-bit form.
pub const PAYLOAD_BITS: usize = 48;
/// Payload + CRC-16.
pub const CODEWORD_BITS: usize = 64;
pub const PAYLOAD_MASK: u64 = (1 << PAYLOAD_BITS) - 1;

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF) of the payload's six bytes, big
/// endian. Its initial value makes the all-zero payload's codeword not all zeros.
pub fn crc16(payload: u64) -> u16 {
    crc16_of(&payload.to_be_bytes()[2..])
}

fn crc16_of(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The 64 bits carried for `payload` (which must fit in 48 bits): payload then CRC.
pub fn codeword(payload: u64) -> [bool; CODEWORD_BITS] {
    let word = ((payload & PAYLOAD_MASK) << 16) | u64::from(crc16(payload & PAYLOAD_MASK));
    std::array::from_fn(|i| (word >> (CODEWORD_BITS - 1 - i)) & 1 == 1)
}

/// The payload of 64 received bits, if their CRC holds.
pub fn payload_of(bits: &[bool; CODEWORD_BITS]) -> Option<u64> {
    let word = bits.iter().fold(0u64, |w, b| (w << 1) | u64::from(*b));
    let payload = word >> 16;
    (crc16(payload) == (word & 0xFFFF) as u16).then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_standard_check_value() {
        // The catalogue check value of CRC-16/CCITT-FALSE ("123456789").
        assert_eq!(crc16_of(b"123456789"), 0x29B1);
        let payload = u64::from_be_bytes([0, 0, b'1', b'2', b'3', b'4', b'5', b'6']);
        assert_eq!(crc16(payload), crc16_of(b"123456"));
        assert_ne!(crc16(payload), crc16(payload ^ 1));
    }

    #[test]
    fn codeword_round_trips_and_any_single_flip_is_caught() {
        for payload in [0u64, 1, 0x1234_5678_9abc, PAYLOAD_MASK] {
            let word = codeword(payload);
            assert_eq!(payload_of(&word), Some(payload));
            for i in 0..CODEWORD_BITS {
                let mut bad = word;
                bad[i] = !bad[i];
                assert_eq!(payload_of(&bad), None, "flip {i} of {payload:#x}");
            }
        }
        assert!(
            codeword(0).iter().any(|b| *b),
            "the zero payload is not all zeros"
        );
    }
}
