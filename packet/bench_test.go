// SPDX-License-Identifier: MIT

package packet_test

import (
	"testing"

	"github.com/dnstun/dnstun/packet"
)

func BenchmarkDecode(b *testing.B) {
	for _, hc := range hotCases() {
		b.Run(hc.name, func(b *testing.B) {
			p := packet.NewParser()
			var out packet.Parsed
			b.ReportAllocs()
			for b.Loop() {
				if p.Decode(hc.pkt, &out) != packet.OK {
					b.Fatal("decode")
				}
			}
		})
	}
	// A dropped packet (wrong port) must cost far less than a decoded one.
	b.Run("drop_not_dns", func(b *testing.B) {
		pkt := append([]byte(nil), hotCases()[0].pkt...)
		pkt[23] = 54 // UDP destination port 54 (RFC 768 bytes 2-3 of the UDP header)
		p := packet.NewParser()
		var out packet.Parsed
		b.ReportAllocs()
		for b.Loop() {
			if p.Decode(pkt, &out) != packet.DropNotDNS {
				b.Fatal("decode")
			}
		}
	})
}

func BenchmarkReadQuestion(b *testing.B) {
	for _, hc := range hotCases()[:2] {
		b.Run(hc.name, func(b *testing.B) {
			var p packet.Parsed
			packet.NewParser().Decode(hc.pkt, &p)
			msg := hc.pkt[p.PayloadOff : p.PayloadOff+p.PayloadLen]
			var q packet.Question
			b.ReportAllocs()
			for b.Loop() {
				if packet.ReadQuestion(msg, &q) != packet.OK {
					b.Fatal("read")
				}
			}
		})
	}
}

// BenchmarkAnswerInPlace includes copying the query back into the buffer
// (about 70 bytes) on every iteration.
func BenchmarkAnswerInPlace(b *testing.B) {
	for _, hc := range hotCases() {
		b.Run(hc.name, func(b *testing.B) {
			var p packet.Parsed
			packet.NewParser().Decode(hc.pkt, &p)
			var q packet.Question
			packet.ReadQuestion(hc.pkt[p.PayloadOff:p.PayloadOff+p.PayloadLen], &q)
			buf := make([]byte, 1500)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, hc.pkt)
				if packet.AnswerInPlace(buf, &p, &q, &hotReply) == 0 {
					b.Fatal("answer")
				}
			}
		})
	}
}

func BenchmarkWrapReply(b *testing.B) {
	for _, hc := range hotCases()[:2] {
		b.Run(hc.name, func(b *testing.B) {
			buf := make([]byte, 1500)
			copy(buf[packet.MaxHeaderLen:], hc.pkt[len(hc.pkt)-60:])
			b.ReportAllocs()
			for b.Loop() {
				if packet.WrapReply(buf, packet.MaxHeaderLen, 100, hc.from, hc.to) < 0 {
					b.Fatal("wrap")
				}
			}
		})
	}
}

// Full path for one query: decode, read, answer.
func BenchmarkStep(b *testing.B) {
	for _, hc := range hotCases()[:2] {
		b.Run(hc.name, func(b *testing.B) {
			p := packet.NewParser()
			var parsed packet.Parsed
			var q packet.Question
			buf := make([]byte, 1500)
			b.ReportAllocs()
			for b.Loop() {
				n := copy(buf, hc.pkt)
				if p.Decode(buf[:n], &parsed) != packet.OK ||
					packet.ReadQuestion(buf[parsed.PayloadOff:parsed.PayloadOff+parsed.PayloadLen], &q) != packet.OK ||
					packet.AnswerInPlace(buf, &parsed, &q, &hotReply) == 0 {
					b.Fatal("step")
				}
			}
		})
	}
}

// Figures: bench/RESULTS.md, "Hot path (micro-benchmarks)" (scripts/bench.sh
// runs these benchmarks three times); compare ratios measured in one run.
