//! Small string helpers shared by the crates that bound text they keep.

/// The longest prefix of `s` of at most `n` bytes that ends on a char boundary.
pub fn floor_char(s: &str, n: usize) -> &str {
    if n >= s.len() {
        return s;
    }
    let mut n = n;
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}
