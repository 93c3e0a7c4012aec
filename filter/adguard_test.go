// SPDX-License-Identifier: MIT

package filter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// Sources of the expected outcomes in TestAdGuardTable. The KB is the
// "DNS filtering rules syntax" page; the Go files are AdGuard's own code
// and tests (github.com/AdguardTeam/urlfilter and AdGuardHome), read for
// their behaviour, not copied.
const (
	kb        = "https://adguard-dns.io/kb/general/dns-filtering-syntax/"
	kbBasic   = kb + "#basic-examples"
	kbSpecial = kb + "#special-characters"
	kbRegex   = kb + "#regular-expressions"
	kbClient  = kb + "#client"
	kbDeny    = kb + "#denyallow"
	kbType    = kb + "#dnstype"
	kbRewrite = kb + "#dnsrewrite"
	kbImp     = kb + "#important"
	kbBad     = kb + "#badfilter"
	kbHosts   = kb + "#etc-hosts-syntax"
	kbDomains = kb + "#domains-only-syntax"

	ufRewrites    = "urlfilter dnsrewrite_test.go TestDNSResult_DNSRewrites/"
	ufMatch       = "urlfilter dnsrewrite_test.go TestDNSEngine_MatchRequest_dnsRewrite/"
	ufParse       = "urlfilter rules/dnsrewrite_test.go TestNetworkRule_Match_dnsRewrite/"
	ufLoad        = "urlfilter rules/dnsrewrite.go loadDNSRewriteShort, loadDNSRewriteNormal"
	ufException   = "urlfilter dnsrewrite.go removeMatchingException, matchException"
	ufEngine      = "urlfilter dnsengine.go MatchRequest (network rules before host rules)"
	ufDenyIP      = "urlfilter rules/network_rule.go matchRequestDomain (AdGuardHome issue 3175)"
	ufBadClient   = "urlfilter rules/network_rule.go negatesBadfilter, rules/clients.go Equal"
	aghMatch      = "AdGuardHome internal/filtering/filtering.go matchHost (rewrites first)"
	aghRewrites   = "AdGuardHome internal/filtering/dnsrewrite.go processDNSRewrites"
	aghSelf       = "AdGuardHome internal/filtering/dnsrewrite.go processDNSResultRewrites (rewrite to itself)"
	aghHosts      = "AdGuardHome internal/filtering/hosts.go hostsRewrites"
	aghHostsMatch = "AdGuardHome internal/filtering/filtering.go matchHostProcessDNSResult"
	uts46         = "UTS #46 (https://www.unicode.org/reports/tr46/), as golang.org/x/net/idna maps"
)

// agCase is one rule list, one query and AdGuard's outcome for it.
type agCase struct {
	src    string
	rules  string
	name   string
	qtype  string // "" is A
	client string
	// want: "forward", "forward: RULE" (an exception decided), "block:
	// RULE", or "answer: RECORDS (RULE)" with the records the query type
	// gets ("NODATA" for none, an rcode name for an error rcode).
	want string
	// dev, when set, says how AdGuard decides differently and why dnstun
	// keeps its meaning (README, "Where dnstun differs"); want is then
	// dnstun's outcome.
	dev string
}

var agCases = []agCase{
	// Basic syntax.
	{src: kbBasic, rules: "||example.org^", name: "example.org", want: "block: ||example.org^"},
	{src: kbBasic, rules: "||example.org^", name: "www.example.org", want: "block: ||example.org^"},
	{src: kbSpecial, rules: "||example.org", name: "test.example.org", want: "block: ||example.org"},
	{src: kbSpecial, rules: "||example.org", name: "testexample.org", want: "forward"},
	{src: kbBasic, rules: "||example.org^\n@@||example.org^", name: "www.example.org", want: "forward: @@||example.org^"},
	{src: kbBasic, rules: "1.2.3.4 example.org", name: "example.org", want: "answer: 1.2.3.4 (1.2.3.4 example.org)"},
	{src: kbBasic, rules: "1.2.3.4 example.org", name: "www.example.org", want: "forward"},
	{src: kbBasic, rules: "0.0.0.0 example.org", name: "example.org", want: "block: 0.0.0.0 example.org"},
	{src: kbBasic, rules: "127.0.0.1 example.org", name: "example.org", want: "block: 127.0.0.1 example.org",
		dev: "AdGuard Home answers 127.0.0.1 ('basically the same as blocking'); dnstun blocks with the list's block answer, as hosts block lists mean"},
	{src: kbDomains, rules: "example.org", name: "example.org", want: "block: example.org"},
	{src: kbBasic, rules: "example.org", name: "www.example.org", want: "block: example.org",
		dev: "AdGuard blocks only the name; dnstun's domain lines block subdomains too, the meaning of the domain lists (OISD, HaGeZi) written for such blockers"},
	{src: kbDomains, rules: "*.example.org", name: "a.example.org", want: "block: *.example.org"},
	{src: kbDomains, rules: "*.example.org", name: "example.org", want: "forward"},
	{src: kbSpecial, rules: "ample.org|", name: "example.org", want: "block: ample.org|"},
	{src: kbSpecial, rules: "ample.org|", name: "example.org.com", want: "forward"},
	{src: kbSpecial, rules: "|example", name: "example.org", want: "forward",
		dev: "AdGuard reads '|example' as a prefix ('example' at the start of the name); dnstun reads '|name' without '^' as exactly that name, like '|name^'"},
	{src: kbSpecial, rules: "|example", name: "test.example", want: "forward"},
	{src: kbSpecial, rules: "||ex*le.org^", name: "sub.example.org", want: "block: ||ex*le.org^"},
	{src: kbBasic, rules: "! Here goes a comment\n# Also a comment", name: "here.goes", want: "forward"},
	{src: kbRegex, rules: "/example.*/", name: "example.net", want: "block: /example.*/"},
	{src: kbRegex, rules: "/example.*/", name: "sample.net", want: "forward"},
	{src: kbRegex, rules: "||example.org^$important\n@@/example.*/$important", name: "example.org", want: "forward: @@/example.*/$important"},

	// $client.
	{src: kbClient, rules: "||example.org^\n@@||*^$client=127.0.0.1", name: "example.org", client: "127.0.0.1", want: "forward: @@||*^$client=127.0.0.1"},
	{src: kbClient, rules: "||example.org^\n@@||*^$client=127.0.0.1", name: "example.org", client: "10.0.0.1", want: "block: ||example.org^"},
	{src: kbClient, rules: "||example.org^$client=192.168.0.0/24", name: "example.org", client: "192.168.0.5", want: "block: ||example.org^$client=192.168.0.0/24"},
	{src: kbClient, rules: "||example.org^$client=192.168.0.0/24", name: "example.org", client: "192.168.1.5", want: "forward"},
	{src: kbClient, rules: "||example.org^$client=~192.168.0.0/24", name: "example.org", client: "192.168.0.5", want: "forward"},
	{src: kbClient, rules: "||example.org^$client=~192.168.0.0/24", name: "example.org", client: "10.0.0.1", want: "block: ||example.org^$client=~192.168.0.0/24"},
	{src: kbClient, rules: "||example.org^$client=~192.168.0.1|192.168.0.0/24", name: "example.org", client: "192.168.0.1", want: "forward"},
	{src: kbClient, rules: "||example.org^$client=~192.168.0.1|192.168.0.0/24", name: "example.org", client: "192.168.0.2", want: "block: ||example.org^$client=~192.168.0.1|192.168.0.0/24"},
	{src: kbClient, rules: "||example.org^$client=2001:db8::/32", name: "example.org", client: "2001:db8::7", want: "block: ||example.org^$client=2001:db8::/32"},

	// $denyallow.
	{src: kbDeny, rules: "*$denyallow=com|net", name: "example.org", want: "block: *$denyallow=com|net"},
	{src: kbDeny, rules: "*$denyallow=com|net", name: "example.com", want: "forward"},
	{src: kbDeny, rules: "*$denyallow=com|net", name: "a.b.net", want: "forward"},
	{src: kbDeny, rules: "/.*/\n@@*$denyallow=com|net", name: "example.org", want: "forward: @@*$denyallow=com|net"},
	{src: kbDeny, rules: "/.*/\n@@*$denyallow=com|net", name: "tracker.com", want: "block: /.*/"},
	{src: kbDeny, rules: "||example.org^$denyallow=sub.example.org", name: "example.org", want: "block: ||example.org^$denyallow=sub.example.org"},
	{src: kbDeny, rules: "||example.org^$denyallow=sub.example.org", name: "x.sub.example.org", want: "forward"},
	{src: kbDeny, rules: "||example.org^$denyallow=sub.example.org", name: "other.example.org", want: "block: ||example.org^$denyallow=sub.example.org"},
	{src: ufDenyIP, rules: "*$denyallow=com", name: "10.1.2.3", want: "forward"},
	{src: ufDenyIP, rules: "*$denyallow=com", name: "10.1.2.3.example", want: "block: *$denyallow=com"},
	{src: ufDenyIP, rules: "/^10\\./$denyallow=com", name: "10.1.2.3", want: "forward"},
	{src: ufDenyIP, rules: "/^10\\./", name: "10.1.2.3", want: "block: /^10\\./"},

	// $dnstype.
	{src: kbType, rules: "||example.org^$dnstype=AAAA", name: "example.org", qtype: "AAAA", want: "block: ||example.org^$dnstype=AAAA"},
	{src: kbType, rules: "||example.org^$dnstype=AAAA", name: "example.org", qtype: "A", want: "forward"},
	{src: kbType, rules: "||example.org^$dnstype=~A|~CNAME", name: "example.org", qtype: "A", want: "forward"},
	{src: kbType, rules: "||example.org^$dnstype=~A|~CNAME", name: "example.org", qtype: "CNAME", want: "forward"},
	{src: kbType, rules: "||example.org^$dnstype=~A|~CNAME", name: "example.org", qtype: "MX", want: "block: ||example.org^$dnstype=~A|~CNAME"},
	{src: kbType, rules: "||example.org^$dnstype=aaaa", name: "example.org", qtype: "AAAA", want: "block: ||example.org^$dnstype=aaaa"},
	{src: kbType, rules: "||example.org^$dnstype=~A|AAAA", name: "example.org", qtype: "MX", want: "forward"},

	// $important.
	{src: kbImp, rules: "||example.org^$important\n@@||example.org^", name: "example.org", want: "block: ||example.org^$important"},
	{src: kbImp, rules: "@@||example.org^\n||example.org^$important", name: "a.example.org", want: "block: ||example.org^$important"},
	{src: kbImp, rules: "||example.org^$important\n@@||example.org^$important", name: "example.org", want: "forward: @@||example.org^$important"},

	// $badfilter.
	{src: kbBad, rules: "||example.com\n||example.com$badfilter", name: "example.com", want: "forward"},
	{src: kbBad, rules: "||example.org^\n@@||example.org^\n@@||example.org^$badfilter", name: "example.org", want: "block: ||example.org^"},
	{src: kbBad, rules: "0.0.0.0 example.org\n|example.org^$badfilter", name: "example.org", want: "block: 0.0.0.0 example.org"},
	{src: kbBad + " (domain lines are hosts-style rules, " + kbDomains + ")", rules: "example.org\n||example.org^$badfilter", name: "example.org", want: "block: example.org"},
	{src: ufBadClient, rules: "||x.example^$client=10.0.0.1|192.168.0.0/24\n||x.example^$client=192.168.0.0/24|10.0.0.1,badfilter", name: "x.example", client: "10.0.0.1", want: "forward"},
	{src: ufBadClient, rules: "||x.example^$client=2001:db8::1\n||x.example^$client=2001:DB8:0:0::1,badfilter", name: "x.example", client: "2001:db8::1", want: "forward"},
	{src: ufBadClient, rules: "||x.example^$client=192.168.0.5/24\n||x.example^$client=192.168.0.0/24,badfilter", name: "x.example", client: "192.168.0.9", want: "forward"},
	{src: ufBadClient, rules: "||x.example^$client=10.0.0.1\n||x.example^$client=10.0.0.1|10.0.0.2,badfilter", name: "x.example", client: "10.0.0.1", want: "block: ||x.example^$client=10.0.0.1"},
	{src: ufBadClient, rules: "||x.example^$client=~10.0.0.1\n||x.example^$client=10.0.0.1,badfilter", name: "x.example", client: "10.0.0.2", want: "block: ||x.example^$client=~10.0.0.1"},
	{src: ufBadClient, rules: "||x.example^$important\n||x.example^$badfilter", name: "x.example", want: "block: ||x.example^$important"},
	{src: ufBadClient, rules: "||x.example^$important\n||x.example^$important,badfilter", name: "x.example", want: "forward"},
	{src: kbBad, rules: "||x.example^$dnsrewrite=1.2.3.4\n||x.example^$dnsrewrite=1.2.3.4,badfilter", name: "x.example", want: "forward"},
	{src: kbBad, rules: "||x.example^$dnstype=A\n||x.example^$badfilter", name: "x.example", want: "block: ||x.example^$dnstype=A",
		dev: "urlfilter's negatesBadfilter ignores $dnstype and would disable the rule; the KB asks for the same text, which dnstun follows"},

	// $dnsrewrite syntax.
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=1.2.3.4", name: "example.com", want: "answer: 1.2.3.4 (||example.com^$dnsrewrite=1.2.3.4)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=abcd::1234", name: "example.com", qtype: "AAAA", want: "answer: abcd::1234 (||example.com^$dnsrewrite=abcd::1234)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=abcd::1234", name: "example.com", qtype: "A", want: "answer: NODATA (||example.com^$dnsrewrite=abcd::1234)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=example.net", name: "example.com", want: "answer: CNAME example.net. (||example.com^$dnsrewrite=example.net)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=REFUSED", name: "example.com", want: "answer: REFUSED (||example.com^$dnsrewrite=REFUSED)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=NOERROR;A;1.2.3.4", name: "example.com", want: "answer: 1.2.3.4 (||example.com^$dnsrewrite=NOERROR;A;1.2.3.4)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=NOERROR;CNAME;example.net", name: "example.com", want: "answer: CNAME example.net. (||example.com^$dnsrewrite=NOERROR;CNAME;example.net)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=REFUSED;;", name: "example.com", want: "answer: REFUSED (||example.com^$dnsrewrite=REFUSED;;)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=NXDOMAIN;;", name: "example.com", want: "answer: NXDOMAIN (||example.com^$dnsrewrite=NXDOMAIN;;)"},
	{src: kbRewrite, rules: "||example.com^$dnsrewrite=NOERROR;TXT;hello_world", name: "example.com", qtype: "TXT", want: `answer: "hello_world" (||example.com^$dnsrewrite=NOERROR;TXT;hello_world)`},
	{src: kbRewrite, rules: "||4.3.2.1.in-addr.arpa^$dnsrewrite=NOERROR;PTR;example.net.", name: "4.3.2.1.in-addr.arpa", qtype: "PTR", want: "answer: PTR example.net. (||4.3.2.1.in-addr.arpa^$dnsrewrite=NOERROR;PTR;example.net.)"},
	{src: ufParse + "success/a", rules: "||example.org^$dnsrewrite=noerror;a;127.0.0.1", name: "example.org", want: "answer: 127.0.0.1 (||example.org^$dnsrewrite=noerror;a;127.0.0.1)"},
	{src: ufParse + "success/aaaa", rules: "||example.org^$dnsrewrite=noerror;aaaa;::1", name: "example.org", qtype: "AAAA", want: "answer: ::1 (||example.org^$dnsrewrite=noerror;aaaa;::1)"},
	{src: ufParse + "success/cname", rules: "||example.org^$dnsrewrite=noerror;cname;example.net", name: "example.org", want: "answer: CNAME example.net. (||example.org^$dnsrewrite=noerror;cname;example.net)"},
	{src: ufParse + "success/txt", rules: "||example.org^$dnsrewrite=noerror;txt;hello", name: "example.org", qtype: "TXT", want: `answer: "hello" (||example.org^$dnsrewrite=noerror;txt;hello)`},
	{src: ufParse + "success/nxdomain", rules: "||example.org^$dnsrewrite=nxdomain;;", name: "example.org", want: "answer: NXDOMAIN (||example.org^$dnsrewrite=nxdomain;;)"},
	{src: ufParse + "success_reverse", rules: "||1.2.3.4.in-addr.arpa^$dnsrewrite=noerror;ptr;example.net", name: "1.2.3.4.in-addr.arpa", qtype: "PTR", want: "answer: PTR example.net. (||1.2.3.4.in-addr.arpa^$dnsrewrite=noerror;ptr;example.net)"},
	{src: ufLoad + " (any rcode of the full form)", rules: "||example.org^$dnsrewrite=FORMERR;;", name: "example.org", want: "answer: FORMERR (||example.org^$dnsrewrite=FORMERR;;)"},
	{src: ufLoad + " (an error rcode ignores type and value)", rules: "||example.org^$dnsrewrite=NXDOMAIN;A;1.2.3.4", name: "example.org", want: "answer: NXDOMAIN (||example.org^$dnsrewrite=NXDOMAIN;A;1.2.3.4)"},
	{src: ufParse + "parse_errors/short_bad_keyword", rules: "||example.org^$dnsrewrite=BADKEYWORD", name: "example.org", want: "forward"},
	{src: ufLoad + " (unknown keyword: invalid, not a CNAME)", rules: "||example.org^$dnsrewrite=FORMERR", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/short_bad_syntax", rules: "||example.org^$dnsrewrite=bad;syntax", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/nonexisting", rules: "||example.org^$dnsrewrite=nonexisting;nonexisting;nonexisting", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/noerror_nonexisting", rules: "||example.org^$dnsrewrite=noerror;nonexisting;nonexisting", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/a_bad_ip", rules: "||example.org^$dnsrewrite=noerror;a;badip", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/aaaa_ipv4", rules: "||example.org^$dnsrewrite=noerror;aaaa;127.0.0.1", name: "example.org", qtype: "AAAA", want: "forward"},
	{src: ufParse + "parse_errors/cname_bad_host", rules: "||example.org^$dnsrewrite=noerror;cname;!!badstuff", name: "example.org", want: "forward"},
	{src: ufParse + "parse_errors/adguard_home_issue_2492", rules: "||example.org^$dnsrewrite=A:NOERROR:127.0.0.1", name: "example.org", want: "forward"},
	{src: ufMatch + "https-type", rules: "|https-type^$dnstype=HTTPS,dnsrewrite=REFUSED", name: "https-type", qtype: "HTTPS", want: "answer: REFUSED (|https-type^$dnstype=HTTPS,dnsrewrite=REFUSED)"},
	{src: ufMatch + "https-type", rules: "|https-type^$dnstype=HTTPS,dnsrewrite=REFUSED", name: "https-type", qtype: "A", want: "forward"},
	{src: kbRewrite, rules: "$dnstype=AAAA,denyallow=example.org,dnsrewrite=NOERROR;;", name: "x.example.com", qtype: "AAAA", want: "answer: NODATA ($dnstype=AAAA,denyallow=example.org,dnsrewrite=NOERROR;;)"},
	{src: kbRewrite, rules: "$dnstype=AAAA,denyallow=example.org,dnsrewrite=NOERROR;;", name: "www.example.org", qtype: "AAAA", want: "forward"},
	{src: kbRewrite, rules: "$dnstype=AAAA,denyallow=example.org,dnsrewrite=NOERROR;;", name: "x.example.com", qtype: "A", want: "forward"},
	{src: ufParse + "success/mx", rules: "||example.org^$dnsrewrite=noerror;mx;30 example.net", name: "example.org", qtype: "MX", want: "forward",
		dev: "AdGuard answers MX, SRV, HTTPS and SVCB rewrites; dnstun skips them with an unsupported warning (no in-place builder for those records)"},
	{src: ufLoad + " (REFUSED is the one short keyword)", rules: "||example.org^$dnsrewrite=NXDOMAIN", name: "example.org", want: "answer: NXDOMAIN (||example.org^$dnsrewrite=NXDOMAIN)",
		dev: "AdGuard rejects the keywords NXDOMAIN, SERVFAIL and NOERROR in the short form; dnstun accepts them, as it did before, for lists written for it"},

	// $dnsrewrite exceptions and precedence.
	{src: ufRewrites + "disable-one", rules: "|disable-one^$dnsrewrite=127.0.0.1\n|disable-one^$dnsrewrite=127.0.0.2\n@@||disable-one^$dnsrewrite=127.0.0.1", name: "disable-one", want: "answer: 127.0.0.2 (|disable-one^$dnsrewrite=127.0.0.2)"},
	{src: ufRewrites + "priority", rules: "|priority^$dnsrewrite=127.0.0.1\n||priority^", name: "priority", want: "answer: 127.0.0.1 (|priority^$dnsrewrite=127.0.0.1)"},
	{src: ufRewrites + "priority-important", rules: "|priority-important^$dnsrewrite=127.0.0.1\n||priority-important^$important", name: "priority-important", want: "answer: 127.0.0.1 (|priority-important^$dnsrewrite=127.0.0.1)"},
	{src: ufRewrites + "simple-exc", rules: "|simple-exc^$dnsrewrite=127.0.0.1\n@@||simple-exc^", name: "simple-exc", want: "answer: 127.0.0.1 (|simple-exc^$dnsrewrite=127.0.0.1)"},
	{src: ufRewrites + "exc-exc", rules: "@@|exc-exc^$dnsrewrite=127.0.0.1\n@@||exc-exc^", name: "exc-exc", want: "forward: @@||exc-exc^"},
	{src: ufRewrites + "exc-exc-order", rules: "@@||exc-exc-order^\n@@|exc-exc-order^$dnsrewrite=127.0.0.1", name: "exc-exc-order", want: "forward: @@||exc-exc-order^"},
	{src: ufRewrites + "disable-cname", rules: "|disable-cname^$dnsrewrite=127.0.0.1\n|disable-cname^$dnsrewrite=new-cname\n@@||disable-cname^$dnsrewrite=new-cname", name: "disable-cname", want: "answer: 127.0.0.1 (|disable-cname^$dnsrewrite=127.0.0.1)"},
	{src: ufRewrites + "disable-cname-many; " + aghRewrites, rules: "|disable-cname-many^$dnsrewrite=127.0.0.1\n|disable-cname-many^$dnsrewrite=new-cname-1\n|disable-cname-many^$dnsrewrite=new-cname-2\n@@||disable-cname-many^$dnsrewrite=new-cname-1", name: "disable-cname-many", want: "answer: CNAME new-cname-2. (|disable-cname-many^$dnsrewrite=new-cname-2)"},
	{src: ufRewrites + "disable-all", rules: "|disable-all^$dnsrewrite=127.0.0.1\n|disable-all^$dnsrewrite=127.0.0.2\n@@||disable-all^$dnsrewrite", name: "disable-all", want: "forward: @@||disable-all^$dnsrewrite"},
	{src: ufRewrites + "disable-all-order", rules: "|disable-all-order^$dnsrewrite=127.0.0.1\n@@||disable-all-order^$dnsrewrite=\n|disable-all-order^$dnsrewrite=127.0.0.2", name: "disable-all-order", want: "forward: @@||disable-all-order^$dnsrewrite="},
	{src: ufMatch + "blocked-later", rules: "@@||blocked-later^$dnsrewrite\n||blocked-later^", name: "blocked-later", want: "block: ||blocked-later^"},
	{src: ufMatch + "etc-hosts-rule (with an answering address)", rules: "@@||etc-hosts-rule^$dnsrewrite\n192.0.2.1 etc-hosts-rule", name: "etc-hosts-rule", want: "answer: 192.0.2.1 (192.0.2.1 etc-hosts-rule)"},
	{src: kbRewrite + " (records are summed)", rules: "||example.com^$dnsrewrite=NOERROR;A;1.2.3.4\n||example.com^$dnsrewrite=NOERROR;A;1.2.3.5", name: "example.com", want: "answer: 1.2.3.4 1.2.3.5 (||example.com^$dnsrewrite=NOERROR;A;1.2.3.4)"},
	{src: kbRewrite + " (keyword rewrites first)", rules: "||example.com^$dnsrewrite=1.2.3.4\n||example.com^$dnsrewrite=REFUSED", name: "example.com", want: "answer: REFUSED (||example.com^$dnsrewrite=REFUSED)"},
	{src: kbRewrite + " (then the CNAME)", rules: "||example.com^$dnsrewrite=1.2.3.4\n||example.com^$dnsrewrite=example.net", name: "example.com", want: "answer: CNAME example.net. (||example.com^$dnsrewrite=example.net)"},
	{src: kbRewrite + " (summed, a TXT query gets the TXT)", rules: "||example.com^$dnsrewrite=1.2.3.4\n||example.com^$dnsrewrite=NOERROR;TXT;t", name: "example.com", qtype: "TXT", want: `answer: "t" (||example.com^$dnsrewrite=1.2.3.4)`},
	{src: kbRewrite + "; " + aghRewrites, rules: "||example.com^$dnsrewrite=1.2.3.4,important\n||example.com^$dnsrewrite=1.2.3.5", name: "example.com", want: "answer: 1.2.3.4 1.2.3.5 (||example.com^$dnsrewrite=1.2.3.4,important)"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4,important\n@@||x.example^$dnsrewrite,important", name: "x.example", want: "forward: @@||x.example^$dnsrewrite,important"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4,important\n@@||x.example^$dnsrewrite", name: "x.example", want: "answer: 1.2.3.4 (||x.example^$dnsrewrite=1.2.3.4,important)"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4,important\n@@||x.example^$dnsrewrite=1.2.3.4", name: "x.example", want: "answer: 1.2.3.4 (||x.example^$dnsrewrite=1.2.3.4,important)"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4,important\n@@||x.example^$dnsrewrite=1.2.3.4,important", name: "x.example", want: "forward: @@||x.example^$dnsrewrite=1.2.3.4,important"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4\n@@||x.example^$dnsrewrite=1.2.3.4,important", name: "x.example", want: "forward: @@||x.example^$dnsrewrite=1.2.3.4,important"},
	{src: ufException, rules: "||x.example^$dnsrewrite=REFUSED\n@@||x.example^$dnsrewrite=REFUSED;;", name: "x.example", want: "forward: @@||x.example^$dnsrewrite=REFUSED;;"},
	{src: ufException, rules: "||x.example^$dnsrewrite=1.2.3.4\n@@||x.example^$dnsrewrite=REFUSED", name: "x.example", want: "answer: 1.2.3.4 (||x.example^$dnsrewrite=1.2.3.4)"},
	{src: ufException, rules: "||x.example^$dnsrewrite=NOERROR;TXT;a\n||x.example^$dnsrewrite=NOERROR;TXT;b\n@@||x.example^$dnsrewrite=NOERROR;TXT;a", name: "x.example", qtype: "TXT", want: `answer: "b" (||x.example^$dnsrewrite=NOERROR;TXT;b)`},
	{src: ufException, rules: "||x.example^$dnsrewrite=y.example\n@@||x.example^$dnsrewrite=NOERROR;CNAME;Y.example", name: "x.example", want: "forward: @@||x.example^$dnsrewrite=NOERROR;CNAME;Y.example"},
	{src: aghMatch, rules: "||x.example^$dnsrewrite=1.2.3.4\n@@||x.example^$important", name: "x.example", want: "answer: 1.2.3.4 (||x.example^$dnsrewrite=1.2.3.4)"},
	{src: aghMatch, rules: "||example.org^$dnsrewrite=1.2.3.4\n||ads.example.org^", name: "ads.example.org", want: "answer: 1.2.3.4 (||example.org^$dnsrewrite=1.2.3.4)"},
	{src: ufException + " (the exception matches the query, on any of its suffixes)", rules: "||a.example.org^$dnsrewrite=1.2.3.4\n@@||example.org^$dnsrewrite", name: "a.example.org", want: "forward: @@||example.org^$dnsrewrite"},
	{src: ufException + "; " + aghRewrites, rules: "||example.org^$dnsrewrite=1.1.1.1\n||a.example.org^$dnsrewrite=2.2.2.2\n@@||a.example.org^$dnsrewrite=2.2.2.2", name: "a.example.org", want: "answer: 1.1.1.1 (||example.org^$dnsrewrite=1.1.1.1)"},
	{src: kbClient + "; " + kbRewrite, rules: "||x.example^$client=10.0.0.1,dnsrewrite=1.2.3.4", name: "x.example", client: "10.0.0.1", want: "answer: 1.2.3.4 (||x.example^$client=10.0.0.1,dnsrewrite=1.2.3.4)"},
	{src: kbClient + "; " + kbRewrite, rules: "||x.example^$client=10.0.0.1,dnsrewrite=1.2.3.4", name: "x.example", client: "10.0.0.2", want: "forward"},
	{src: kbClient + "; " + ufException, rules: "||x.example^$dnsrewrite=1.2.3.4\n@@||x.example^$dnsrewrite,client=10.0.0.1", name: "x.example", client: "10.0.0.2", want: "answer: 1.2.3.4 (||x.example^$dnsrewrite=1.2.3.4)"},
	{src: aghSelf, rules: "||x.example^$dnsrewrite=x.example\n||x.example^", name: "x.example", want: "block: ||x.example^"},

	// Hosts lines.
	{src: aghHosts + "; urlfilter dnsengine.go Match (two lines for one name)", rules: "192.168.0.1 example.local\n192.168.0.2 example.local", name: "example.local", want: "answer: 192.168.0.1 192.168.0.2 (192.168.0.1 example.local)"},
	{src: aghHosts, rules: "192.168.0.1 example.local\n2000::1 example.local", name: "example.local", qtype: "AAAA", want: "answer: 2000::1 (192.168.0.1 example.local)"},
	{src: aghHosts, rules: "192.168.0.1 example.local\n2000::1 example.local", name: "example.local", qtype: "A", want: "answer: 192.168.0.1 (192.168.0.1 example.local)"},
	{src: aghHosts + " (a name with no address of the family: NODATA)", rules: "192.168.0.1 example.local", name: "example.local", qtype: "AAAA", want: "answer: NODATA (192.168.0.1 example.local)"},
	{src: aghHosts + " (PTR)", rules: "192.168.0.1 example.local", name: "1.0.168.192.in-addr.arpa", qtype: "PTR", want: "answer: PTR example.local. (192.168.0.1 example.local)"},
	{src: aghHosts + " (PTR)", rules: "2000::1 example.local", name: "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.ip6.arpa", qtype: "PTR", want: "answer: PTR example.local. (2000::1 example.local)"},
	{src: aghHosts + " (PTR only for PTR queries)", rules: "192.168.0.1 example.local", name: "1.0.168.192.in-addr.arpa", qtype: "A", want: "forward"},
	{src: aghHosts + " (other types are not answered)", rules: "192.168.0.1 example.local", name: "example.local", qtype: "CNAME", want: "forward"},
	{src: aghHosts + " (other types are not answered)", rules: "192.168.0.1 example.local", name: "example.local", qtype: "MX", want: "forward"},
	{src: kbHosts + " (aliases)", rules: "192.0.2.7 nas.home printer.home", name: "printer.home", want: "answer: 192.0.2.7 (192.0.2.7 nas.home printer.home)"},
	{src: kbHosts, rules: "192.0.2.7 nas.home printer.home", name: "x.nas.home", want: "forward"},
	{src: kbHosts + " (comments)", rules: "192.0.2.8 example.net # this is also a comment", name: "example.net", want: "answer: 192.0.2.8 (192.0.2.8 example.net)"},
	{src: ufEngine + "; " + aghHostsMatch, rules: "192.168.0.1 nas.example.org\n||example.org^", name: "nas.example.org", want: "block: ||example.org^"},
	{src: ufEngine, rules: "0.0.0.1 nas.example.org\n@@||example.org^", name: "nas.example.org", want: "forward: @@||example.org^"},
	{src: ufEngine, rules: "192.168.0.1 nas.example.org\n||example.org^$dnstype=AAAA", name: "nas.example.org", want: "answer: 192.168.0.1 (192.168.0.1 nas.example.org)"},
	{src: aghMatch, rules: "192.168.0.1 nas.example.org\n||nas.example.org^$dnsrewrite=192.168.0.9", name: "nas.example.org", want: "answer: 192.168.0.9 (||nas.example.org^$dnsrewrite=192.168.0.9)"},

	// International names.
	{src: uts46, rules: "||пример.рф^", name: "www.xn--e1afmkfd.xn--p1ai", want: "block: ||пример.рф^"},
	{src: uts46 + " (full-width letters)", rules: "||ｅｘａｍｐｌｅ．ｏｒｇ^", name: "example.org", want: "block: ||ｅｘａｍｐｌｅ．ｏｒｇ^"},
	{src: uts46, rules: "||Bücher.example^", name: "xn--bcher-kva.example", want: "block: ||Bücher.example^"},
	{src: uts46, rules: "192.0.2.1 ｎａｓ．ｈｏｍｅ", name: "nas.home", want: "answer: 192.0.2.1 (192.0.2.1 ｎａｓ．ｈｏｍｅ)"},
}

var qtypes = map[string]uint16{"": 1, "A": 1, "CNAME": 5, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28, "HTTPS": 65}

var rcodeNames = map[uint8]string{1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

// dotted converts a wire-format name to its dotted form with the root dot.
func dotted(w []byte) string {
	var sb strings.Builder
	for len(w) > 0 && w[0] != 0 && int(w[0]) < len(w) {
		sb.Write(w[1 : 1+w[0]])
		sb.WriteByte('.')
		w = w[1+w[0]:]
	}
	return sb.String()
}

// outcome writes a decision as agCase.want does.
func outcome(s *Set, d Decision, qtype uint16) string {
	switch d.Action {
	case Block:
		return "block: " + ruleText(s, d.Rule)
	case Forward:
		if d.Rule == 0 {
			return "forward"
		}
		return "forward: " + ruleText(s, d.Rule)
	}
	var recs []string
	switch {
	case d.Rcode != 0:
		recs = append(recs, rcodeNames[d.Rcode])
	case d.CNAME != nil:
		recs = append(recs, "CNAME "+dotted(d.CNAME))
	default:
		for _, a := range d.Addrs {
			if qtype == 1 && a.Is4() || qtype == 28 && a.Is6() {
				recs = append(recs, a.String())
			}
		}
		if qtype == 16 {
			for _, t := range d.TXT {
				recs = append(recs, strconv.Quote(string(t)))
			}
		}
		if qtype == 12 && d.PTR != nil {
			recs = append(recs, "PTR "+dotted(d.PTR))
		}
	}
	if len(recs) == 0 {
		recs = append(recs, "NODATA")
	}
	return fmt.Sprintf("answer: %s (%s)", strings.Join(recs, " "), ruleText(s, d.Rule))
}

// TestAdGuardTable runs AdGuard's documented and tested outcomes through
// the decision the engine uses (Set.DecideQuery and Live.DecideQuery).
// Each list gets a filler rule, so that a list whose one rule is invalid
// is still a list (its rule skipped with a warning).
func TestAdGuardTable(t *testing.T) {
	if len(agCases) < 100 {
		t.Fatalf("%d cases, want at least 100", len(agCases))
	}
	for i, tc := range agCases {
		s, _ := build(t, tc.rules+"\n||filler.invalid^\n")
		qt, ok := qtypes[tc.qtype]
		if !ok {
			t.Fatalf("case %d: unknown type %q", i, tc.qtype)
		}
		q := Query{Name: []byte(tc.name), QType: qt}
		if tc.client != "" {
			q.Client = netip.MustParseAddr(tc.client)
		}
		got := outcome(s, s.DecideQuery(&q), qt)
		if live := outcome(s, NewLive(s).DecideQuery(&q), qt); live != got {
			t.Errorf("case %d: Live decided %q, Set %q", i, live, got)
		}
		if got != tc.want {
			t.Errorf("case %d (%s)\n  rules  %q\n  query  %s %s client %q\n  got    %s\n  want   %s", i, tc.src, tc.rules, tc.name, tc.qtype, tc.client, got, tc.want)
		}
		if tc.src == "" {
			t.Errorf("case %d has no source", i)
		}
	}
}
