//! A minimal, bounds-checked DER reader: just enough to walk an X.509 certificate to its
//! SubjectPublicKeyInfo and its extensions.
//!
//! It is deliberately forgiving about the *contents* of elements it does not need (a BOOLEAN
//! encoded `0x01` instead of `0xFF` is never even looked at), and strict about *structure*:
//! every length is checked against the remaining input, so no input can make it read out of
//! bounds or panic.

use super::CertificateError;

/// ASN.1 universal tags used while walking a certificate.
pub(crate) mod tag {
    pub(crate) const BOOLEAN: u8 = 0x01;
    pub(crate) const INTEGER: u8 = 0x02;
    pub(crate) const BIT_STRING: u8 = 0x03;
    pub(crate) const OCTET_STRING: u8 = 0x04;
    pub(crate) const OID: u8 = 0x06;
    pub(crate) const SEQUENCE: u8 = 0x30;
    /// `[0]` constructed, context-specific (the certificate version).
    pub(crate) const CONTEXT_0: u8 = 0xA0;
    /// `[3]` constructed, context-specific (the extensions).
    pub(crate) const CONTEXT_3: u8 = 0xA3;
}

/// One parsed TLV element.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Element<'a> {
    /// The identifier octet (single-byte tags only).
    pub(crate) tag: u8,
    /// The content octets.
    pub(crate) value: &'a [u8],
}

/// A cursor over a sequence of DER elements.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    input: &'a [u8],
}

fn malformed(reason: &'static str) -> CertificateError {
    CertificateError::Malformed { reason }
}

impl<'a> Reader<'a> {
    /// A reader over `input`.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Reader { input }
    }

    /// Whether all input has been consumed.
    pub(crate) fn is_empty(&self) -> bool {
        self.input.is_empty()
    }

    /// The tag of the next element, if any, without consuming it.
    pub(crate) fn peek_tag(&self) -> Option<u8> {
        self.input.first().copied()
    }

    /// Reads the next element.
    pub(crate) fn read(&mut self) -> Result<Element<'a>, CertificateError> {
        let (&tag, rest) = self
            .input
            .split_first()
            .ok_or(malformed("unexpected end of data"))?;
        if tag & 0x1F == 0x1F {
            return Err(malformed(
                "multi-byte ASN.1 tags are not used in certificates",
            ));
        }
        let (&first, rest) = rest
            .split_first()
            .ok_or(malformed("element length missing"))?;
        let (length, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let count = usize::from(first & 0x7F);
            if count == 0 {
                return Err(malformed("indefinite length is not DER"));
            }
            if count > 4 {
                return Err(malformed("element length too large"));
            }
            if rest.len() < count {
                return Err(malformed("element length truncated"));
            }
            let (bytes, rest) = rest.split_at(count);
            let length = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (length, rest)
        };
        if rest.len() < length {
            return Err(malformed("element runs past the end of its container"));
        }
        let (value, rest) = rest.split_at(length);
        self.input = rest;
        Ok(Element { tag, value })
    }

    /// Reads the next element and checks its tag.
    pub(crate) fn expect(
        &mut self,
        tag: u8,
        what: &'static str,
    ) -> Result<&'a [u8], CertificateError> {
        let element = self.read()?;
        if element.tag != tag {
            return Err(malformed(what));
        }
        Ok(element.value)
    }

    /// Reads and discards the next element.
    pub(crate) fn skip(&mut self) -> Result<(), CertificateError> {
        self.read().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        let mut r = Reader::new(&[0x04, 0x02, 0xAA, 0xBB, 0x30, 0x81, 0x01, 0x05]);
        let e = r.read().unwrap();
        assert_eq!((e.tag, e.value), (0x04, &[0xAA, 0xBB][..]));
        let e = r.read().unwrap();
        assert_eq!((e.tag, e.value), (0x30, &[0x05][..]));
        assert!(r.is_empty());
    }

    #[test]
    fn rejects_overlong_and_indefinite_lengths() {
        assert!(Reader::new(&[0x30, 0x05, 0x00]).read().is_err());
        assert!(Reader::new(&[0x30, 0x80, 0x00, 0x00]).read().is_err());
        assert!(Reader::new(&[0x30, 0x85, 1, 2, 3, 4, 5]).read().is_err());
        assert!(Reader::new(&[0x30]).read().is_err());
        assert!(Reader::new(&[]).read().is_err());
        assert!(Reader::new(&[0x1F, 0x01, 0x00]).read().is_err());
    }
}
