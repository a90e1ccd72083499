package httpd

import (
	"testing"

	"github.com/ringkv/ringkv/peer/kv"
)

// TestETagsMatch: entity-tag lists as clients send them in If-Match and
// If-None-Match, matched against one version.
func TestETagsMatch(t *testing.T) {
	v := kv.Version{TS: 4, Node: 1}
	const tag = `"0000000000000004-0000000000000001"`
	const other = `"00000000000000aa-0000000000000001"`
	for _, tc := range []struct {
		h     string
		match bool
		bad   bool
	}{
		{h: tag, match: true},
		{h: " " + tag + " ", match: true},
		{h: "*", match: true},
		{h: "W/" + tag, match: true},
		{h: other},
		{h: other + ", " + tag, match: true},
		{h: other + "," + tag, match: true},
		{h: tag + ",,", match: true},
		{h: ", ," + tag, match: true},
		{h: other + ", W/" + other},
		{h: "", bad: false},
		{h: `"abc"`, bad: true},
		{h: `abc`, bad: true},
		{h: `"0000000000000004-0000000000000001`, bad: true},
		{h: tag + ", *", bad: true},
		{h: `""`, bad: true},
	} {
		match, err := etagsMatch([]byte(tc.h), v)
		if (err != nil) != tc.bad || (err == nil && match != tc.match) {
			t.Errorf("etagsMatch(%q) = %v, %v; want match %v, malformed %v", tc.h, match, err, tc.match, tc.bad)
		}
	}
}
