package storage

import (
	"strings"
	"testing"
)

func TestPartName(t *testing.T) {
	p := PartName("in/big.bin", "src->dst")
	if !strings.HasPrefix(p, "in/.big.bin.") || !strings.HasSuffix(p, PartSuffix) || len(p) != len("in/.big.bin.")+keyLen+len(PartSuffix) {
		t.Fatalf("PartName = %q", p)
	}
	if p != PartName("in/big.bin", "src->dst") {
		t.Fatal("PartName is not deterministic")
	}
	if p == PartName("in/big.bin", "other->dst") {
		t.Fatal("two keys share a part name")
	}
	if !IsPartOf("in/big.bin", p) || !IsPart(p) {
		t.Fatalf("IsPartOf/IsPart(%q) = false", p)
	}
	for _, n := range []string{"in/.big.bin.ferry-part", "in/.big.bin.zzzzzzzz.ferry-part", ".big.bin." + p[len("in/.big.bin."):], "in/.other.bin." + p[len("in/.big.bin."):], "in/.big.bin.12345678.ferry-part2"} {
		if IsPartOf("in/big.bin", n) {
			t.Errorf("IsPartOf(in/big.bin, %q) = true", n)
		}
	}
}

func TestPartNameLongNames(t *testing.T) {
	long := strings.Repeat("é", 125) // 250 bytes
	p := PartName("d/"+long, "k")
	base := p[len("d/"):]
	if len(base) > 255 {
		t.Fatalf("part name of a 250-byte name is %d bytes", len(base))
	}
	if !IsPartOf("d/"+long, p) {
		t.Fatal("IsPartOf fails for a clipped name")
	}
	if !strings.HasPrefix(base, ".é") || strings.ContainsRune(base, '\uFFFD') {
		t.Fatalf("clipped name is not valid UTF-8 text: %q", base)
	}
}
