package client_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/ringkv/ringkv/client"
	"github.com/ringkv/ringkv/peer"
)

// TestWireTypesMatchPeer: the JSON the server makes of peer's types, with
// every field set, decodes into this package's types without an unknown
// field, and encodes back to the same JSON: the two definitions name the
// same fields.
func TestWireTypesMatchPeer(t *testing.T) {
	for _, pair := range []struct{ server, client any }{
		{&peer.ClusterStatus{}, &client.ClusterStatus{}},
		{&peer.RingOwners{}, &client.RingOwners{}},
	} {
		fill(reflect.ValueOf(pair.server).Elem())
		b, err := json.Marshal(pair.server)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(pair.client); err != nil {
			t.Errorf("%T: %v in %s", pair.client, err, b)
			continue
		}
		back, err := json.Marshal(pair.client)
		if err != nil {
			t.Fatal(err)
		}
		var want, got any
		json.Unmarshal(b, &want)
		json.Unmarshal(back, &got)
		if !reflect.DeepEqual(want, got) {
			t.Errorf("%T encodes as\n%s\nwant\n%s", pair.client, back, b)
		}
	}
}

// fill sets every field v holds to a value that is not zero, so that no
// omitempty field is left out of its JSON.
func fill(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Date(2026, 12, 2, 1, 2, 3, 0, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i))
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem())
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 1, 1))
		fill(v.Index(0))
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k)
		fill(e)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString("s")
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Uint, reflect.Uint64, reflect.Uint32, reflect.Uint8:
		v.SetUint(7)
	case reflect.Float64:
		v.SetFloat(0.5)
	}
}
