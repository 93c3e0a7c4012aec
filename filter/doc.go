// SPDX-License-Identifier: MIT

// Package filter decides, for every DNS query, whether dnstun forwards it,
// blocks it or answers it from local records and rewrites.
//
// Rule lists are read by a [Builder] (one [Builder.ParseList] or
// [Builder.ParseListWith] call per list) and frozen by [Builder.Build] into
// a [Set]. The engine calls [Set.DecideQuery] (or [Set.Decide], the same
// without a client), usually through a [Live], which swaps whole sets on
// reload; on the forward path it calls [Set.InspectAnswer]. `dnstun
// explain` calls [Set.Explain].
//
// # Invariants
//
//   - A Set is immutable once built. Every method is safe for concurrent use,
//     and the slices of a Decision (Addrs, CNAME, TXT) alias the Set's memory:
//     callers must not modify them. A reload builds a new Set off the hot path
//     and publishes it with [Live.Store]; in-flight calls keep the Set they
//     loaded. RuleIDs are valid for the Set that returned them.
//   - Decide, DecideQuery and InspectAnswer never allocate, never panic and
//     never keep their arguments, on every path (blocks, exceptions, rewrites,
//     patterns, built-ins, misses), whatever bytes a name holds (tested with
//     testing.AllocsPerRun and fuzzing). A nil *Set forwards everything.
//   - Query names are what the engine's question reader produces: lower-case
//     ASCII (IDNs in punycode), labels joined by '.', no trailing dot, at
//     most 255 bytes. Other bytes simply match nothing.
//   - A Builder is not safe for concurrent use. ParseList is all-or-nothing:
//     a list that fails (read error, not a list at all) adds no rule (it is
//     rolled back).
//
// # Names
//
// Rule names are lower-cased, one trailing dot is removed, and they must have
// labels of 1..63 bytes, a total of at most 253 bytes, and only a-z, 0-9,
// '-' and '_'. Names with non-ASCII characters are converted to their
// ASCII form with UTS #46 (golang.org/x/net/idna: the lookup mapping,
// non-transitional, the bidi rule, '_' allowed): full-width letters and
// dots become ASCII, case is folded, and non-ASCII labels become "xn--" +
// Punycode. Queries arrive in ASCII form, so "||пример.рф^" matches the
// query "xn--e1afmkfd.xn--p1ai" and "||ｅｘａｍｐｌｅ．ｏｒｇ^" the query
// "example.org".
//
// # Formats
//
// The format is detected per line, so one file may mix them.
//
//   - Comments: lines whose first non-blank character is '#' or '!', blank
//     lines, and trailing comments (a '#' preceded by a space or tab) on any
//     rule line. CR LF line ends and a UTF-8 byte-order mark are accepted.
//   - Hosts lines: "ADDR name [name...]". ADDR 0.0.0.0, 127.0.0.1, :: or ::1
//     blocks exactly those names (not subdomains). Any other address is a
//     local record for exactly those names, answered as AdGuard Home
//     answers from a hosts file: an A query gets the IPv4 addresses of
//     every line of the name, AAAA the IPv6 ones (NODATA when the name has
//     none of that family), other types are forwarded; and a PTR query for
//     the address's reverse name (in-addr.arpa, ip6.arpa) gets the line's
//     first name (the first line that has the address). An IPv6 zone is
//     dropped. The boilerplate names of hosts files (localhost,
//     localhost.localdomain, local, broadcasthost, ip6-*, 0.0.0.0,
//     localhost4/6 ...) are ignored whatever their address.
//   - Plain domains: "example.org" blocks example.org AND its subdomains
//     (blocky's and the OISD/HaGeZi "domains" lists' meaning; AdGuard's
//     domains-only syntax means the exact name, use "|example.org^" for that).
//     "@@example.org" is the matching exception.
//   - Adblock-style rules (AdGuard DNS filtering syntax): "||example.org^" the
//     domain and its subdomains; "|example.org^" exactly the name; '^' and a
//     final '|' are optional on anchored names; "@@" makes an exception of
//     the same reach.
//   - Wildcards: a pattern with '*', or an unanchored pattern such as
//     ".example.org^" or "example.org^" (a suffix match: it also matches
//     "badexample.org"), is matched against the whole name: "||" anchors at
//     the start of a label, "|" at the start or end, "^" is the end of the
//     name (the only separator a host name holds), "*" any run of characters.
//     "*$denyallow=com" and "$dnstype=AAAA,..." (empty pattern) match every name.
//   - Regular expressions: "/re/" (and "/re/$modifiers"), Go RE2 syntax,
//     matched against the lower-case name.
//   - IP rules, for response inspection only ([Set.InspectAnswer]):
//     "192.0.2.1", "||192.0.2.1^", "|2001:db8::1^" and CIDR prefixes
//     "198.51.100.0/24", each with optional "@@", $important, $client and
//     $badfilter. They never match query names.
//
// Rules that cannot apply to DNS (URL paths, ports, schemes, cosmetic
// rules) and modifiers other than those below ($ctag, $third-party, $domain,
// ...) are skipped with an "unsupported" warning naming the modifier.
//
// # Modifiers
//
//   - $important: the rule outranks plain exceptions (see Precedence).
//   - $dnstype=A|AAAA|~TXT: the rule applies only to the listed query types,
//     or to all but the "~" ones (names as in RFC 1035 and successors, or
//     TYPEnnn).
//   - $client=IP|CIDR|~IP...: only for (or, with "~", not for) those clients.
//     v4-mapped clients match IPv4 rules. When the client is unknown
//     ([Set.Decide]) rules with positive clients do not apply and "~" ones do.
//     Client names and tags ($ctag) are unsupported.
//   - $denyallow=d1|d2: the rule does not apply to d1, d2 and their
//     subdomains, nor to a query name that is an IP address (as AdGuard).
//   - $process=NAME|~NAME... (dnstun's extension, not AdGuard's): only when
//     the asking process's name or executable (Query.Proc, Query.Exe) is
//     one of the names, or, with "~", is none of them; names compare
//     exactly but for ASCII case, 1 to 255 bytes, no '|' or ','. When the
//     process is unknown (both nil, and always in [Set.InspectAnswer]),
//     rules with positive names do not apply and "~" ones do.
//     [Set.UsesProcess] says whether a set has such rules.
//   - $badfilter: disables every rule with the same pattern, the same
//     exception-ness and the same other modifiers (in any order; the values
//     of $client, $dnstype, $denyallow and $process compared as sets, so
//     the order and spelling of an address or type do not matter), in any
//     list, before or after it. The $badfilter rule itself matches nothing.
//     Hosts lines and plain domain lines are immune (AdGuard's KB).
//   - $dnsrewrite: short form "1.2.3.4" (A), "2001:db8::1" (AAAA),
//     "other.example" (CNAME), or an rcode keyword in capitals: "REFUSED"
//     (AdGuard's), "NXDOMAIN", "SERVFAIL", "NOERROR" (dnstun's); any other
//     word in capitals is an error, not a CNAME. Full form
//     "RCODE;TYPE;VALUE", RCODE and TYPE in any case: RCODE one of NOERROR,
//     FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, YXDOMAIN, YXRRSET,
//     NXRRSET, NOTAUTH, NOTZONE (an error rcode ignores TYPE and VALUE);
//     TYPE A, AAAA, CNAME, TXT, PTR, or empty with an empty VALUE (NODATA).
//     Other types (MX, HTTPS, SVCB, SRV) are unsupported. "\," escapes a
//     comma in a value. A rule without a value answers NODATA.
//
// A $dnsrewrite exception cancels rewrites only, never blocks or hosts
// records: "@@||x^$dnsrewrite" every rewrite of x, "@@||x^$dnsrewrite=V"
// those with the value V (a CNAME that target, an error rcode every
// rewrite of that rcode, NOERROR the record of that type and value). A
// plain exception leaves $important rewrites alone; an $important one
// cancels them too. Of the rewrites left, those of the most specific name
// (or pattern) answer: an rcode first, then a CNAME, then the records of
// the consecutive rules of that name (a name's rewrites are kept side by
// side). A CNAME rewrite of a name to itself leaves the query to the other
// rules. At most 8 names and patterns with rewrites, and 16 rewrite
// exceptions with a value, are weighed per query.
//
// # Precedence
//
// For a query, every rule whose name is the query name or one of its parent
// suffixes (exact rules only on the query name itself), every pattern rule
// that matches, and whose $dnstype, $client, $denyallow and $process
// conditions hold and which no $badfilter disabled, belongs to one class.
// The highest class present decides, in the order AdGuard Home applies
// them (filtering.go matchHost, urlfilter's DNSEngine.MatchRequest):
//
//  1. rewrite              $dnsrewrite (important or not) that no rewrite
//     exception cancelled   answer
//  2. important exception  @@...$important   forward
//  3. important block      ...$important     block
//  4. exception            @@...             forward
//  5. block                ||x^, |x^, x, hosts 0.0.0.0 lines, patterns   block
//  6. hosts record         a hosts line with an address   answer
//  7. nothing              forward (with the rewrite exception as the rule
//     when it cancelled every rewrite)
//
// Within a class the most specific rule reports: the longest matching
// suffix, on the same name an exact rule before a subtree rule, then the
// first in list order; name rules before pattern rules. Every pair of
// classes is tested in both list orders (TestPrecedencePairs), and
// TestAdGuardTable holds AdGuard's outcomes, with their sources.
//
// Before all rules, the built-in signals answer, when on (the default;
// [Builder.SetBypassSignals]): use-application-dns.net (Firefox's DoH
// canary), mask.icloud.com and mask-h2.icloud.com (iCloud Private Relay) get
// NXDOMAIN, and _dns.resolver.arpa (DDR, RFC 9462) NODATA, so that clients
// stay on the filtering resolver. Only those exact names, with no EDE.
//
// # Decisions
//
// A Block carries the list's ListOptions: Mode (ModeDefault = the engine's),
// BlockAddrs for ModeCustom, TTL (0 = engine default), and EDE: 15 Blocked,
// or 17 Filtered when a $client rule blocked (a per-client policy). An Answer
// carries Rcode, Addrs (both families; the engine picks by qtype, NODATA if
// none), CNAME and PTR in wire format and TXT strings. Per-rule answers
// other than the list mode come from $dnsrewrite (REFUSED, NXDOMAIN,
// addresses); hosts records answer A/AAAA with Addrs and PTR with PTR.
//
// # Regular expressions: what "too slow" means
//
// Go's RE2 engine runs in time linear in the name, so there is no
// catastrophic backtracking; the cost to bound is the number of expressions
// run per query and their size. A regex is rejected (per line, warned
// "too slow") when its source exceeds 1024 bytes or it compiles to more than
// 2000 instructions. Each pattern rule has a prefilter literal: the longest
// literal every match must contain (for wildcards, the longest run between
// '*'s), at least 3 bytes, indexed by its first trigram; Decide looks up the
// trigrams of the name and runs only the rules whose literal occurs in it.
// At most 64 pattern rules per Set may lack such a literal (they run on
// every query); more are rejected "too slow". At most 64 expressions run per
// query; rules past that budget are skipped.
//
// # Memory layout and build
//
// Names live in a byte arena of records [value][len][name] padded to 2
// bytes, in 1 MiB chunks (it grows without copying), indexed by an
// open-addressed []uint32 table (1.5 slots per name, a slot = record
// offset/2 plus hash tag bits) behind a bloom filter of 8 bits per name. A
// name with a single plain block rule (the common case) costs only its
// record: the rule's line and textual form are packed into the value, its
// list is the list whose arena region holds the record, and its text is
// rebuilt for Explain from the form and the name ("0.0.0.0 " + name, "||" +
// name + "^", ...). Other rules are kept in a side table with their text.
//
// Lookups hash a query name a label at a time, right to left, so one pass
// yields the hash of every label suffix; then the bloom bits of all
// suffixes are read, then the home slots of those that pass, then the
// probes: each stage's cache misses overlap instead of adding up. A set
// whose names carry only plain block rules stops at the longest listed
// suffix whose rule applies.
//
// The Builder writes the same arena and the same index directly, the index
// sized from the rule lines in the list's first 64 KiB, so Build hands both
// to the Set (the next ParseList copies them before changing them). For
// 1,000,000 names (a hosts file): the Set retains about 38 MB, the build's
// heap peak is about 1.1x that, and the build runs in well under a second
// on the reference machine (figures in bench/RESULTS.md, "Filter engine").
//
// # Warnings and rejected files
//
// Every skipped line (and every skipped name of a hosts line) is reported to
// the warn callback with the list name, line number, offending token and
// reason, after the whole list has been read. Warnings are either malformed
// (a line that is no rule of any known syntax, a bad modifier value, a regex
// that does not compile) or unsupported (valid syntax dnstun does not
// implement, or a regex over the limits). Lines longer than [MaxLineLen]
// bytes are malformed. ParseList returns an error wrapping [ErrNotAList],
// and adds nothing, when the input holds a NUL byte (binary, UTF-16), when
// its first non-comment line starts with '<' (an HTML or XML page), or when
// malformed lines outnumber accepted ones.
package filter
