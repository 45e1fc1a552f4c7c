package server

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	ferryv1 "github.com/ferry-dev/ferry/proto/ferry/v1"
)

// TestLimitsCoverEveryField: every string, bytes, repeated and map field of every request of
// the API has its own limit in fieldLimits, and every entry there names a real field. A field
// added to the .proto without a limit fails here.
func TestLimitsCoverEveryField(t *testing.T) {
	seen := map[protoreflect.FullName]bool{}
	var walk func(md protoreflect.MessageDescriptor, depth int)
	walk = func(md protoreflect.MessageDescriptor, depth int) {
		if depth > 4 || md.FullName().Parent() == "google.protobuf" {
			return // well-known types (Duration, Timestamp) hold no strings
		}
		for i := 0; i < md.Fields().Len(); i++ {
			fd := md.Fields().Get(i)
			switch {
			case fd.IsList() || fd.IsMap() || fd.Kind() == protoreflect.StringKind || fd.Kind() == protoreflect.BytesKind:
				seen[fd.FullName()] = true
				if _, ok := fieldLimits[fd.FullName()]; !ok {
					t.Errorf("%s has no limit in fieldLimits", fd.FullName())
				}
			case fd.Kind() == protoreflect.MessageKind:
				walk(fd.Message(), depth+1)
			}
		}
	}
	for _, svc := range []protoreflect.ServiceDescriptor{
		ferryv1.File_ferry_v1_agent_proto.Services().ByName("AgentService"),
		ferryv1.File_ferry_v1_fleet_proto.Services().ByName("FleetService"),
	} {
		for i := 0; i < svc.Methods().Len(); i++ {
			walk(svc.Methods().Get(i).Input(), 0)
		}
	}
	for name := range fieldLimits {
		if !seen[name] {
			t.Errorf("fieldLimits names %s, which is no request field", name)
		}
	}
}
