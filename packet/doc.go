// SPDX-License-Identifier: MIT

// Package packet parses and rewrites the IPv4/IPv6 + UDP + DNS packets that
// pass through the dnstun TUN device.
//
// Invariants, relied on by the engine and checked by tests, benchmarks and
// fuzz targets in this package:
//
//   - No allocation. Decode, ReadQuestion, ReadReply, AnswerDNS,
//     AnswerInPlace and WrapReply never allocate: results go into
//     fixed-size values the caller owns (Parsed, Question), as offsets
//     rather than sub-slices, with addresses copied into netip values and
//     names copied into a [MaxName]byte array. Hot-path failures are Reason
//     values, not errors.
//   - No panic, on any input. Every offset read from the wire is bounds
//     checked before use; the fuzz targets feed arbitrary bytes.
//   - No retained buffer. No function keeps a reference to a buffer it
//     was given once it returns; Question.Name aliases the Question, never
//     the message.
//   - One pass over the headers. Decode checks lengths, the version
//     nibble, IPv4 options and fragment bits, the IPv6 next header, the
//     protocol and the destination port on the raw bytes and reads the
//     fields from them. gopacket is the reference it is tested against:
//     every packet Decode accepts, gopacket decodes to the same result
//     (TestDecodeAgreesWithGopacket, FuzzDecode).
//   - Never answer garbage. Messages shorter than a DNS header and
//     responses (QR=1) where a query is expected are dropped (Reason.Rcode
//     says answer=false), so the filter cannot be used as a reflector.
//
// Ownership: a Parser and a Question belong to one goroutine at a time.
// The builders (AnswerDNS, AnswerInPlace, WrapReply) write into the buffer
// they are given, in place, and may have changed it even when they report
// failure.
//
// Wire formats: IPv4 RFC 791, IPv6 RFC 8200, UDP RFC 768, DNS RFC 1035
// §4.1, EDNS(0) RFC 6891 §6.1, Extended DNS Errors RFC 8914, Internet
// checksum RFC 1071 and its incremental update RFC 1624.
package packet
