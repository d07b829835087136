// Paddle's own Go SDK against `ctkn serve`'s events API: ListEvents over
// every page (the SDK follows meta.pagination.next), by type (the SDK
// repeats a slice parameter: ?event_type=a&event_type=b), and
// ListEventTypes. Run by tests/integration/test_api_sdk_go.py with the
// client-token tests of this package (TestMain, helpers).
package sdkgo_test

import (
	"slices"
	"strings"
	"testing"

	paddle "github.com/PaddleHQ/paddle-go-sdk/v4"
)

// One event as the test compares it: ID, type and its token.
type seenEvent struct{ id, typ, token string }

func eventsOf(t *testing.T, req *paddle.ListEventsRequest) ([]seenEvent, int) {
	t.Helper()
	cx := ctx(t)
	start := rec.count()
	col, err := reader.ListEvents(cx, req)
	if err != nil {
		t.Fatalf("list events: %v", err)
	}
	var out []seenEvent
	if err := col.Iter(cx, func(e paddle.Event) (bool, error) {
		switch v := e.(type) {
		case *paddle.ClientTokenCreatedEvent:
			out = append(out, seenEvent{v.EventID, string(v.EventType), v.Data.ID})
		case *paddle.ClientTokenUpdatedEvent:
			out = append(out, seenEvent{v.EventID, string(v.EventType), v.Data.ID})
		case *paddle.ClientTokenRevokedEvent:
			out = append(out, seenEvent{v.EventID, string(v.EventType), v.Data.ID})
		default:
			t.Errorf("an event the SDK did not parse as a client token's: %T", e)
		}
		return true, nil
	}); err != nil {
		t.Fatalf("iterate events: %v", err)
	}
	return out, rec.count() - start
}

func TestListEvents(t *testing.T) {
	a := create(t, "events a "+run, nil)
	b := create(t, "events b "+run, nil)
	revoke(t, a.ID) // answered once this replica has applied it

	all, requests := eventsOf(t, &paddle.ListEventsRequest{PerPage: ptr(2)})
	if want := (len(all) + 1) / 2; requests != want {
		t.Errorf("%d requests for %d events at 2 a page, want %d",
			requests, len(all), want)
	}
	var ids, mine []string
	for _, e := range all {
		ids = append(ids, e.id)
		if e.token == a.ID || e.token == b.ID {
			mine = append(mine, e.token+" "+e.typ)
		}
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("event IDs not strictly ascending: %v", ids)
	}
	slices.Sort(mine)
	want := []string{a.ID + " client_token.created", a.ID + " client_token.revoked",
		b.ID + " client_token.created"}
	slices.Sort(want)
	if !slices.Equal(mine, want) {
		t.Errorf("our events %v, want %v", mine, want)
	}

	// A list of types, sent repeated; the values add up.
	start := rec.count()
	some, _ := eventsOf(t, &paddle.ListEventsRequest{
		PerPage:   ptr(200),
		EventType: []string{"client_token.revoked", "client_token.updated"},
	})
	if reqs := rec.since(start); len(reqs) == 0 ||
		!strings.Contains(reqs[0], "event_type=client_token.revoked&event_type=client_token.updated") {
		t.Errorf("the SDK no longer repeats event_type: %v", reqs)
	}
	found := false
	for _, e := range some {
		if e.typ == "client_token.created" {
			t.Errorf("a create among revokes and updates: %+v", e)
		}
		found = found || (e.token == a.ID && e.typ == "client_token.revoked")
	}
	if !found {
		t.Errorf("a's revoke is not among %v", some)
	}
}

func TestListEventTypes(t *testing.T) {
	cx := ctx(t)
	col, err := reader.ListEventTypes(cx, &paddle.ListEventTypesRequest{})
	if err != nil {
		t.Fatalf("list event types: %v", err)
	}
	var names []string
	if err := col.Iter(cx, func(et *paddle.EventType) (bool, error) {
		names = append(names, string(et.Name))
		if !slices.Equal(et.AvailableVersions, []int{1}) || et.Group == "" ||
			et.Description == "" {
			t.Errorf("event type %+v", et)
		}
		return true, nil
	}); err != nil {
		t.Fatalf("iterate event types: %v", err)
	}
	for _, n := range []string{"client_token.created", "client_token.updated",
		"client_token.revoked", "notification_setting.created", "api_key.expiring"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s not among %v", n, names)
		}
	}
}
