package httpd

import (
	"net"
	"reflect"
)

// embeddedConn returns the net.Conn that a wrapper struct embeds (as
// fasthttp's per-IP connection does, unexported), or nil.
func embeddedConn(c net.Conn) net.Conn {
	v := reflect.ValueOf(c)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil
	}
	f := v.Elem().FieldByName("Conn")
	if !f.IsValid() || f.Kind() != reflect.Interface || !f.CanInterface() || f.IsNil() {
		return nil
	}
	inner, _ := f.Interface().(net.Conn)
	return inner
}
