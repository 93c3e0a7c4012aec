// SPDX-License-Identifier: MIT

// Package filter decides, for every DNS query, whether dnstun forwards it,
// blocks it or answers it from local records.
//
// Rule lists are read by a [Builder] (one [Builder.ParseList] call per list)
// and frozen by [Builder.Build] into a [Set]. The engine calls
// [Set.Decide] (usually through a [Live], which swaps whole sets on reload).
//
// # Invariants
//
//   - A Set is immutable once built. Every method is safe for concurrent use,
//     and Decision.Addrs aliases the Set's memory: callers must not modify it.
//     A reload builds a new Set off the hot path and publishes it with
//     [Live.Store]; in-flight Decide calls keep using the Set they loaded.
//   - Decide never allocates, never panics and never keeps name, for hits,
//     misses, exceptions and answers, whatever bytes name holds (tested with
//     testing.AllocsPerRun and fuzzing). A nil *Set forwards everything.
//   - Decide expects the name as the engine's question reader produces it:
//     lower-case ASCII, labels joined by '.', no trailing dot, the root as the
//     empty slice, at most 253 bytes. Other bytes are harmless: they simply
//     match nothing, because every stored name was validated (below).
//   - A Builder is not safe for concurrent use. ParseList is all-or-nothing:
//     a list that fails (read error, not a list at all) adds no rule.
//
// # Names
//
// Rule names are lower-cased, one trailing dot is removed, and they must have
// labels of 1..63 bytes, a total of at most 253 bytes, and only the
// characters a-z, 0-9, '-' and '_'. IDNA labels are accepted in their ASCII
// (punycode, "xn--") form as they are; names with non-ASCII bytes are skipped
// with a warning in this version (a later version may convert them).
//
// # Formats
//
// The format is detected per line, so one file may mix them.
//
//   - Comments: lines whose first non-blank character is '#' or '!', blank
//     lines, and trailing comments (a '#' preceded by a space or tab) on any
//     rule line. CR LF line ends and a UTF-8 byte-order mark are accepted.
//   - Hosts lines: "ADDR name [name...]". ADDR 0.0.0.0, 127.0.0.1, :: or ::1
//     blocks exactly those names (not subdomains) with the engine's default
//     mode. Any other address becomes a local answer for exactly those names,
//     as /etc/hosts does; several lines for one name accumulate addresses,
//     of both families (an IPv6 zone such as "%lo0" is dropped). The
//     boilerplate names of hosts files (localhost, localhost.localdomain,
//     local, broadcasthost, ip6-localhost, ip6-loopback, ip6-localnet,
//     ip6-mcastprefix, ip6-allnodes, ip6-allrouters, ip6-allhosts, 0.0.0.0,
//     localhost4/6 and their .localdomain4/6 forms) are ignored whatever
//     their address, so the header of a StevenBlack-style file never blocks
//     or answers "localhost". A bare address without names (an AdGuard
//     response-IP rule) is unsupported in this version.
//   - Plain domains: "example.org" blocks example.org AND its subdomains.
//     AdGuard's "domains-only syntax" documents a plain domain as exact
//     (www.example.org stays allowed), while blocky, and the "domains" and
//     "wildcard domains" lists it is fed with (OISD, HaGeZi), mean the whole
//     subtree: those lists are compressed, dropping subdomains that a parent
//     already covers, and trackers rotate random subdomains. Following AdGuard
//     would silently under-block every such list, while the exact form is
//     still available where wanted ("|example.org^" or a hosts line), so the
//     subtree meaning is the default here.
//   - Adblock-style rules, as AdGuard's DNS filtering syntax defines them:
//     "||example.org^" blocks the domain and its subdomains; "|example.org^"
//     blocks exactly the name; "@@||example.org^" and "@@|example.org^" are
//     exceptions of the same reach. The trailing '^' is optional (AdGuard:
//     in a hostname it only marks the end of the name, and its example
//     "||example.org" matches example.org and test.example.org), and a final
//     end anchor '|' ("||example.org^|") is accepted. Rules with "$"
//     modifiers, '*' wildcards, /regex/, paths, ports, unanchored patterns
//     (".example.org^", "://example.") and cosmetic rules ("##", "#%#", ...)
//     are skipped with an "unsupported in this version" warning.
//
// # Warnings and rejected files
//
// Every skipped line (and every skipped name of a hosts line) is reported to
// the warn callback with the list name, line number, offending token and
// reason, after the whole list has been read. Warnings are either malformed
// (a line that is no rule of any known syntax) or unsupported (valid syntax
// this version does not implement). Lines longer than [MaxLineLen] bytes are
// malformed. ParseList returns an error wrapping [ErrNotAList], and adds
// nothing, when the input holds a NUL byte (binary, UTF-16), when its first
// non-comment line starts with '<' (an HTML or XML page, such as a captive
// portal's or a 404), or when malformed lines outnumber accepted ones.
// Unsupported lines, comments and blank lines are not counted either way,
// so an adblock list full of cosmetic rules is still a list.
//
// # Precedence
//
// For a query name N:
//
//  1. a local answer (hosts line with a non-blocking address) for exactly N
//     answers, whatever else matches: it is the user's own record, not a block;
//  2. otherwise an exception ("@@") for N or any parent of N forwards the
//     query (the most specific exception is reported): exceptions beat blocks;
//  3. otherwise the most specific block rule matching N blocks it (an exact
//     rule for N is preferred over a subtree rule for N);
//  4. otherwise the query is forwarded.
//
// AdGuard Home differs in rule 1: there an allowlist rule also cancels a
// hosts-style answer. Here "@@" only undoes blocks.
//
// The Decision names the rule that decided it ([Decision.Rule]); [Set.Rule]
// turns it into its list, line and text for `dnstun explain` and logs.
package filter
