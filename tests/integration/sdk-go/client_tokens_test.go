// Paddle's own Go SDK (github.com/PaddleHQ/paddle-go-sdk/v4, pinned in
// go.mod and go.sum) against `ctkn serve`: the client-side token resource
// end to end, and the errors the SDK surfaces as *paddleerr.Error.
//
// Env: CTKN_API_URL (the server's base URL, the same as its --public-url),
// CTKN_API_KEY (client_token.read + write), CTKN_API_KEY_READ
// (client_token.read only). tests/integration/test_api_sdk_go.py sets them.
//
// What this SDK does on the wire (it differs from the Node.js SDK's):
//   - `Authorization: Bearer <key>`, `User-Agent: PaddleSDK/go 4.1.0`;
//   - a body is JSON with `omitempty` fields, and one that encodes to `{}`
//     is not sent at all (no body, no Content-Type): an empty name is
//     dropped from a create, so it arrives as "no name", or as no body
//     (bad_request) when it was the only field;
//   - a slice query parameter is repeated (?status=active&status=revoked),
//     which ctkn accepts for status (the values add up), as it accepts one
//     comma-separated element, []string{"active,revoked"};
//   - a `next` link is parsed and only its scheme and host are replaced
//     with the base URL's, so its path and query are used as they are;
//   - UpdateClientTokenRequest has only Status (Paddle's public API only
//     revokes), so renaming goes over plain HTTP here, read back with the
//     SDK.
package sdkgo_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paddle "github.com/PaddleHQ/paddle-go-sdk/v4"
	"github.com/PaddleHQ/paddle-go-sdk/v4/pkg/paddleerr"
	"github.com/hashicorp/go-cleanhttp"
)

type token = paddle.ClientSideToken

var (
	baseURL, key, keyRead string

	// The SDK with the writer key and with the reader key. Both go
	// through rec, which records every request's method and URL.
	sdk, reader *paddle.SDK
	rec         = &recorder{inner: cleanhttp.DefaultPooledClient()}

	run string // in names, unique to this run

	idRE    = regexp.MustCompile(`^ctkn_[0-7][0-9a-hjkmnp-tv-z]{25}$`)
	tokenRE = regexp.MustCompile(`^test_[a-zA-Z0-9]{27}$`) // sandbox
	timeRE  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$`)
)

// A valid ID that no token has: ctkn IDs are ULIDs whose first character
// is 0-7, so one starting with 7 is centuries in the future.
const unknownID = "ctkn_7zzzzzzzzzzzzzzzzzzzzzzzzz"

// recorder is the SDK's HTTP client (paddle.WithClient): it passes every
// request on and keeps "METHOD URL" of each, so a test can count pages.
type recorder struct {
	inner *http.Client
	mu    sync.Mutex
	reqs  []string
}

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req.Method+" "+req.URL.String())
	r.mu.Unlock()
	return r.inner.Do(req)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

func (r *recorder) since(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs[n:])
}

func TestMain(m *testing.M) {
	baseURL = os.Getenv("CTKN_API_URL")
	key = os.Getenv("CTKN_API_KEY")
	keyRead = os.Getenv("CTKN_API_KEY_READ")
	if baseURL == "" || key == "" || keyRead == "" {
		fmt.Fprintln(os.Stderr,
			"set CTKN_API_URL, CTKN_API_KEY and CTKN_API_KEY_READ")
		os.Exit(2)
	}
	var err error
	if sdk, err = paddle.New(key, paddle.WithBaseURL(baseURL),
		paddle.WithClient(rec)); err != nil {
		panic(err)
	}
	if reader, err = paddle.New(keyRead, paddle.WithBaseURL(baseURL),
		paddle.WithClient(rec)); err != nil {
		panic(err)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	run = hex.EncodeToString(b)
	os.Exit(m.Run())
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func ptr[T any](v T) *T { return &v }

func str(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *p)
}

func checkToken(t *testing.T, tok *token, name string, description *string) {
	t.Helper()
	if tok == nil {
		t.Fatal("nil token")
	}
	if !idRE.MatchString(tok.ID) {
		t.Errorf("id %q", tok.ID)
	}
	if !tokenRE.MatchString(tok.Token) {
		t.Errorf("token %q", tok.Token)
	}
	if tok.Name != name {
		t.Errorf("name %q, want %q", tok.Name, name)
	}
	if !reflect.DeepEqual(tok.Description, description) {
		t.Errorf("description %s, want %s", str(tok.Description), str(description))
	}
	if !timeRE.MatchString(tok.CreatedAt) || !timeRE.MatchString(tok.UpdatedAt) {
		t.Errorf("times %q %q", tok.CreatedAt, tok.UpdatedAt)
	}
	if tok.UpdatedAt < tok.CreatedAt {
		t.Errorf("updated_at %q < created_at %q", tok.UpdatedAt, tok.CreatedAt)
	}
	switch tok.Status {
	case paddle.ClientTokenStatusActive:
		if tok.RevokedAt != nil {
			t.Errorf("active with revoked_at %s", str(tok.RevokedAt))
		}
	case paddle.ClientTokenStatusRevoked:
		if tok.RevokedAt == nil || *tok.RevokedAt != tok.UpdatedAt {
			t.Errorf("revoked_at %s, updated_at %q", str(tok.RevokedAt), tok.UpdatedAt)
		}
	default:
		t.Errorf("status %q", tok.Status)
	}
}

func create(t *testing.T, name string, description *string) *token {
	t.Helper()
	tok, err := sdk.CreateClientToken(ctx(t), &paddle.CreateClientTokenRequest{
		Name: name, Description: description,
	})
	if err != nil {
		t.Fatalf("create %q: %v", name, err)
	}
	checkToken(t, tok, name, description)
	return tok
}

func get(t *testing.T, c *paddle.SDK, id string) *token {
	t.Helper()
	tok, err := c.GetClientToken(ctx(t), &paddle.GetClientTokenRequest{ClientTokenID: id})
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return tok
}

func setStatus(c *paddle.SDK, ctx context.Context, id string, s paddle.ClientTokenStatus) (*token, error) {
	return c.UpdateClientToken(ctx, &paddle.UpdateClientTokenRequest{
		ClientTokenID: id,
		Status:        paddle.NewPatchField(s),
	})
}

func revoke(t *testing.T, id string) *token {
	t.Helper()
	tok, err := setStatus(sdk, ctx(t), id, paddle.ClientTokenStatusRevoked)
	if err != nil {
		t.Fatalf("revoke %s: %v", id, err)
	}
	return tok
}

// patchRaw sends PATCH /client-tokens/{id} with body over plain HTTP (what
// the SDK cannot send: a name or a description) and returns the status.
func patchRaw(t *testing.T, id string, body map[string]any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequestWithContext(ctx(t), http.MethodPatch,
		baseURL+"/client-tokens/"+id, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("PATCH %s: %v", id, err)
	}
	defer res.Body.Close()
	return res.StatusCode
}

// apiError checks that err is the SDK's *paddleerr.Error with this code,
// matched by errors.Is against the SDK's own sentinel (paddle.ErrNotFound
// and so on), and returns it.
func apiError(t *testing.T, err error, sentinel *paddleerr.Error) *paddleerr.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("expected %s, got success", sentinel.Code)
	}
	var pe *paddleerr.Error
	if !errors.As(err, &pe) {
		t.Fatalf("expected *paddleerr.Error %s, got %T: %v", sentinel.Code, err, err)
	}
	if pe.Code != sentinel.Code {
		t.Fatalf("code %q, want %q (%v)", pe.Code, sentinel.Code, pe)
	}
	if !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(err, paddle.Err...) is false for %s: type %q, the SDK's is %q",
			pe.Code, pe.Type, sentinel.Type)
	}
	if pe.Detail == "" {
		t.Errorf("%s: empty detail", pe.Code)
	}
	if want := "https://developer.paddle.com/v1/errors/shared/" + pe.Code; pe.DocumentationURL != want {
		t.Errorf("documentation_url %q, want %q", pe.DocumentationURL, want)
	}
	return pe
}

func checkField(t *testing.T, pe *paddleerr.Error, field string) {
	t.Helper()
	if len(pe.Errors) == 0 {
		t.Fatalf("%s: no errors[] (%v)", pe.Code, pe)
	}
	if pe.Errors[0].Field != field || pe.Errors[0].Message == "" {
		t.Errorf("errors[0] = %+v, want field %q", pe.Errors[0], field)
	}
}

// walk lists with req and takes every item with Collection.Next, grouping
// them by the request that fetched them: one group a page.
func walk(t *testing.T, c *paddle.SDK, req *paddle.ListClientTokensRequest) (pages [][]*token, items []*token, col *paddle.Collection[*token]) {
	t.Helper()
	cx := ctx(t)
	start := rec.count()
	col, err := c.ListClientTokens(cx, req)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	last := -1
	var r *paddle.Res[*token]
	for r = col.Next(cx); r.Ok(); r = col.Next(cx) {
		if n := rec.count(); n != last {
			pages = append(pages, nil)
			last = n
		}
		pages[len(pages)-1] = append(pages[len(pages)-1], r.Value())
		items = append(items, r.Value())
	}
	if r.Err() != nil {
		t.Fatalf("list, page %d: %v", len(pages)+1, r.Err())
	}
	for _, line := range rec.since(start) {
		if !strings.HasPrefix(line, "GET "+baseURL+"/client-tokens?") &&
			line != "GET "+baseURL+"/client-tokens" {
			t.Errorf("list sent %s", line)
		}
	}
	return pages, items, col
}

func ids(ts []*token) []string {
	out := make([]string, len(ts))
	for i, tok := range ts {
		out[i] = tok.ID
	}
	return out
}

// only keeps the IDs in want, in the order of got.
func only(got []string, want []string) []string {
	var out []string
	for _, id := range got {
		if slices.Contains(want, id) {
			out = append(out, id)
		}
	}
	return out
}

func createMany(t *testing.T, n int, label string) []*token {
	t.Helper()
	var made []*token
	for i := range n {
		made = append(made, create(t, fmt.Sprintf("%s %s %d", label, run, i), nil))
	}
	return made
}

func TestCreate(t *testing.T) {
	name := "Pricing page " + run
	description := "Opens checkout — ünïcödé ✓"
	tok := create(t, name, &description)
	if tok.Status != paddle.ClientTokenStatusActive || tok.CreatedAt != tok.UpdatedAt {
		t.Errorf("new token: %+v", tok)
	}

	bare := create(t, "no description "+run, nil)
	if bare.ID <= tok.ID || bare.Token == tok.Token {
		t.Errorf("IDs from one server increase: %s then %s", tok.ID, bare.ID)
	}

	// Limits are code points, not bytes: 150 four-byte characters.
	long := strings.Repeat("𝄞", 150)
	create(t, long, ptr(strings.Repeat("d", 500)))
}

func TestGet(t *testing.T) {
	made := create(t, "get "+run, ptr("x"))
	if got := get(t, sdk, made.ID); !reflect.DeepEqual(got, made) {
		t.Errorf("get %+v, create %+v", got, made)
	}
	// A read-only key may read.
	if got := get(t, reader, made.ID); !reflect.DeepEqual(got, made) {
		t.Errorf("reader get %+v, create %+v", got, made)
	}
}

func TestListEveryPage(t *testing.T) {
	made := createMany(t, 7, "page")
	want := ids(made)

	// Ascending, 3 a page: every token of ours once, in creation order,
	// following meta.pagination.next.
	start := rec.count()
	pages, items, col := walk(t, sdk, &paddle.ListClientTokensRequest{
		PerPage: ptr(3), OrderBy: ptr("id[ASC]"),
	})
	if len(pages) < 3 {
		t.Fatalf("%d pages, want >= 3", len(pages))
	}
	for i, p := range pages {
		if len(p) > 3 || (i < len(pages)-1 && len(p) != 3) {
			t.Errorf("page %d has %d items", i+1, len(p))
		}
	}
	if reqs := rec.since(start); len(reqs) != len(pages) {
		t.Errorf("%d requests for %d pages: %v", len(reqs), len(pages), reqs)
	} else {
		for _, r := range reqs[1:] {
			if !strings.Contains(r, "after=ctkn_") {
				t.Errorf("a later page without after=: %s", r)
			}
		}
	}
	all := ids(items)
	seen := map[string]bool{}
	for i, id := range all {
		if seen[id] {
			t.Errorf("%s twice", id)
		}
		seen[id] = true
		if i > 0 && all[i-1] >= id {
			t.Errorf("not ascending: %s then %s", all[i-1], id)
		}
	}
	if got := only(all, want); !slices.Equal(got, want) {
		t.Errorf("ours in the list: %v, want %v", got, want)
	}
	if col.PerPage() != 3 || col.HasMore() || col.EstimatedTotal() < len(all) {
		t.Errorf("per_page %d, has_more %v, estimated_total %d for %d items",
			col.PerPage(), col.HasMore(), col.EstimatedTotal(), len(all))
	}
	for _, tok := range items {
		if tok.Status != paddle.ClientTokenStatusActive {
			t.Errorf("default status filter: %s is %s", tok.ID, tok.Status)
		}
	}

	// The SDK's own iterators give the same sequence.
	cx := ctx(t)
	col2, err := sdk.ListClientTokens(cx, &paddle.ListClientTokensRequest{
		PerPage: ptr(3), OrderBy: ptr("id[ASC]"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var iterated []string
	if err := col2.Iter(cx, func(tok *token) (bool, error) {
		iterated = append(iterated, tok.ID)
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(iterated, all) {
		t.Errorf("Iter: %v, want %v", iterated, all)
	}
	col3, err := sdk.ListClientTokens(cx, &paddle.ListClientTokensRequest{
		PerPage: ptr(2), OrderBy: ptr("id[ASC]"),
	})
	if err != nil {
		t.Fatal(err)
	}
	var firstFive []string
	if err := col3.IterErr(cx, func(tok *token) error {
		firstFive = append(firstFive, tok.ID)
		if len(firstFive) == 5 {
			return paddle.ErrStopIteration
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(firstFive, all[:min(5, len(all))]) {
		t.Errorf("IterErr: %v, want %v", firstFive, all[:5])
	}

	// Default order is id[DESC].
	_, desc, _ := walk(t, sdk, &paddle.ListClientTokensRequest{PerPage: ptr(4)})
	rev := slices.Clone(all)
	slices.Reverse(rev)
	if got := ids(desc); !slices.Equal(got, rev) {
		t.Errorf("default order: %v, want %v", got, rev)
	}

	// after: strictly after the cursor, in the chosen order.
	_, after, _ := walk(t, sdk, &paddle.ListClientTokensRequest{
		After: ptr(want[2]), OrderBy: ptr("id[ASC]"), PerPage: ptr(2),
	})
	if got := only(ids(after), want); !slices.Equal(got, want[3:]) {
		t.Errorf("after %s ASC: %v, want %v", want[2], got, want[3:])
	}
	_, before, _ := walk(t, sdk, &paddle.ListClientTokensRequest{
		After: ptr(want[4]), OrderBy: ptr("id[DESC]"), PerPage: ptr(2),
	})
	wantBefore := slices.Clone(want[:4])
	slices.Reverse(wantBefore)
	if got := only(ids(before), want); !slices.Equal(got, wantBefore) {
		t.Errorf("after %s DESC: %v, want %v", want[4], got, wantBefore)
	}

	// The read-only key may list.
	_, viaReader, _ := walk(t, reader, &paddle.ListClientTokensRequest{
		PerPage: ptr(50), OrderBy: ptr("id[ASC]"),
	})
	if got := ids(viaReader); !slices.Equal(got, all) {
		t.Errorf("reader: %v, want %v", got, all)
	}
}

func TestListStatus(t *testing.T) {
	made := createMany(t, 3, "status")
	revoke(t, made[1].ID)
	find := func(req *paddle.ListClientTokensRequest) []string {
		t.Helper()
		_, items, _ := walk(t, sdk, req)
		var out []string
		for _, tok := range items {
			if slices.ContainsFunc(made, func(m *token) bool { return m.ID == tok.ID }) {
				out = append(out, tok.ID+" "+string(tok.Status))
			}
		}
		return out
	}
	a, r := " active", " revoked"
	cases := []struct {
		req  *paddle.ListClientTokensRequest
		want []string
	}{
		{&paddle.ListClientTokensRequest{PerPage: ptr(2)},
			[]string{made[2].ID + a, made[0].ID + a}},
		{&paddle.ListClientTokensRequest{PerPage: ptr(2), Status: []string{"revoked"}},
			[]string{made[1].ID + r}},
		// Several statuses: one comma-separated element, or the SDK's
		// own way, a repeated parameter (?status=active&status=revoked).
		{&paddle.ListClientTokensRequest{PerPage: ptr(2), OrderBy: ptr("id[ASC]"),
			Status: []string{"active,revoked"}},
			[]string{made[0].ID + a, made[1].ID + r, made[2].ID + a}},
		{&paddle.ListClientTokensRequest{PerPage: ptr(2), OrderBy: ptr("id[ASC]"),
			Status: []string{"active", "revoked"}},
			[]string{made[0].ID + a, made[1].ID + r, made[2].ID + a}},
	}
	for _, c := range cases {
		if got := find(c.req); !slices.Equal(got, c.want) {
			t.Errorf("status %q: %v, want %v", c.req.Status, got, c.want)
		}
	}
}

func TestUpdate(t *testing.T) {
	tok := create(t, "before "+run, ptr("old"))

	// The SDK's UpdateClientTokenRequest has no name or description: the
	// change goes over plain HTTP, the SDK reads it back.
	if s := patchRaw(t, tok.ID, map[string]any{
		"name": "after " + run, "description": "new",
	}); s != http.StatusOK {
		t.Fatalf("PATCH name, description: %d", s)
	}
	u := get(t, sdk, tok.ID)
	checkToken(t, u, "after "+run, ptr("new"))
	if u.ID != tok.ID || u.Token != tok.Token || u.CreatedAt != tok.CreatedAt ||
		u.Status != paddle.ClientTokenStatusActive || u.UpdatedAt <= tok.UpdatedAt {
		t.Errorf("after update %+v, before %+v", u, tok)
	}
	if s := patchRaw(t, tok.ID, map[string]any{"description": nil}); s != http.StatusOK {
		t.Fatalf("PATCH description null: %d", s)
	}
	cleared := get(t, sdk, tok.ID)
	checkToken(t, cleared, "after "+run, nil)

	// What the SDK can send: status. Active on an active token is a no-op.
	same, err := setStatus(sdk, ctx(t), tok.ID, paddle.ClientTokenStatusActive)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(same, cleared) {
		t.Errorf("no-op update %+v, want %+v", same, cleared)
	}
}

func TestRevoke(t *testing.T) {
	tok := create(t, "revoke "+run, nil)
	r := revoke(t, tok.ID)
	checkToken(t, r, "revoke "+run, nil)
	if r.Status != paddle.ClientTokenStatusRevoked || r.UpdatedAt <= tok.UpdatedAt ||
		r.ID != tok.ID || r.Token != tok.Token || r.CreatedAt != tok.CreatedAt {
		t.Errorf("revoked %+v, before %+v", r, tok)
	}
	// Revoking again changes nothing.
	if again := revoke(t, tok.ID); !reflect.DeepEqual(again, r) {
		t.Errorf("revoked again %+v, want %+v", again, r)
	}
	if got := get(t, sdk, tok.ID); !reflect.DeepEqual(got, r) {
		t.Errorf("get %+v, want %+v", got, r)
	}
}

func TestErrors(t *testing.T) {
	t.Run("not_found for an unknown ID", func(t *testing.T) {
		_, err := sdk.GetClientToken(ctx(t), &paddle.GetClientTokenRequest{ClientTokenID: unknownID})
		apiError(t, err, paddle.ErrNotFound)
		_, err = setStatus(sdk, ctx(t), unknownID, paddle.ClientTokenStatusRevoked)
		apiError(t, err, paddle.ErrNotFound)
	})

	t.Run("conflict for a change to a revoked token", func(t *testing.T) {
		tok := create(t, "conflict "+run, nil)
		revoked := revoke(t, tok.ID)
		_, err := setStatus(sdk, ctx(t), tok.ID, paddle.ClientTokenStatusActive)
		apiError(t, err, paddle.ErrConflict)
		if got := get(t, sdk, tok.ID); !reflect.DeepEqual(got, revoked) {
			t.Errorf("changed: %+v, want %+v", got, revoked)
		}
	})

	t.Run("invalid_field names the field", func(t *testing.T) {
		cases := []struct {
			req   paddle.CreateClientTokenRequest
			field string
		}{
			// The SDK drops an empty name (omitempty): the server sees
			// none, in a body with only a description.
			{paddle.CreateClientTokenRequest{Name: "", Description: ptr("no name")}, "name"},
			{paddle.CreateClientTokenRequest{Name: strings.Repeat("n", 151)}, "name"},
			{paddle.CreateClientTokenRequest{Name: "bell\a"}, "name"},
			{paddle.CreateClientTokenRequest{Name: "tab\tname"}, "name"},
			{paddle.CreateClientTokenRequest{Name: "n", Description: ptr("")}, "description"},
			{paddle.CreateClientTokenRequest{Name: "n", Description: ptr(strings.Repeat("d", 501))}, "description"},
		}
		for _, c := range cases {
			_, err := sdk.CreateClientToken(ctx(t), &c.req)
			checkField(t, apiError(t, err, paddle.ErrInvalidField), c.field)
		}

		tok := create(t, "invalid "+run, nil)
		_, err := setStatus(sdk, ctx(t), tok.ID, "paused")
		checkField(t, apiError(t, err, paddle.ErrInvalidField), "status")
		if got := get(t, sdk, tok.ID); !reflect.DeepEqual(got, tok) {
			t.Errorf("changed: %+v, want %+v", got, tok)
		}
	})

	t.Run("bad_request when the SDK sends no body", func(t *testing.T) {
		// A create with only an empty name, and an update with no field,
		// encode to {}, which the SDK does not send: a POST or PATCH
		// without a body (nor a Content-Type), which is not JSON.
		_, err := sdk.CreateClientToken(ctx(t), &paddle.CreateClientTokenRequest{Name: ""})
		apiError(t, err, paddle.ErrBadRequest)
		tok := create(t, "empty "+run, nil)
		_, err = sdk.UpdateClientToken(ctx(t), &paddle.UpdateClientTokenRequest{ClientTokenID: tok.ID})
		apiError(t, err, paddle.ErrBadRequest)
		if got := get(t, sdk, tok.ID); !reflect.DeepEqual(got, tok) {
			t.Errorf("changed: %+v, want %+v", got, tok)
		}
	})

	t.Run("invalid_field for bad list parameters", func(t *testing.T) {
		cases := []struct {
			req   paddle.ListClientTokensRequest
			field string
		}{
			{paddle.ListClientTokensRequest{OrderBy: ptr("name[ASC]")}, "order_by"},
			{paddle.ListClientTokensRequest{PerPage: ptr(0)}, "per_page"},
			{paddle.ListClientTokensRequest{After: ptr("not-an-id")}, "after"},
			{paddle.ListClientTokensRequest{Status: []string{"active,paused"}}, "status"},
		}
		for _, c := range cases {
			_, err := sdk.ListClientTokens(ctx(t), &c.req)
			checkField(t, apiError(t, err, paddle.ErrInvalidField), c.field)
		}
	})

	t.Run("forbidden for a write with a read-only key", func(t *testing.T) {
		tok := create(t, "forbidden "+run, nil)
		_, err := reader.CreateClientToken(ctx(t), &paddle.CreateClientTokenRequest{Name: "nope"})
		apiError(t, err, paddle.ErrForbidden)
		_, err = setStatus(reader, ctx(t), tok.ID, paddle.ClientTokenStatusRevoked)
		apiError(t, err, paddle.ErrForbidden)
		if got := get(t, sdk, tok.ID); !reflect.DeepEqual(got, tok) {
			t.Errorf("changed: %+v, want %+v", got, tok)
		}
	})

	t.Run("invalid_token for a well-formed key the server does not know", func(t *testing.T) {
		stranger, err := paddle.New("ctkn_apikey_"+strings.Repeat("A", 43),
			paddle.WithBaseURL(baseURL))
		if err != nil {
			t.Fatal(err)
		}
		_, err = stranger.GetClientToken(ctx(t), &paddle.GetClientTokenRequest{ClientTokenID: unknownID})
		apiError(t, err, paddle.ErrInvalidToken)
		_, err = stranger.CreateClientToken(ctx(t), &paddle.CreateClientTokenRequest{Name: "nope"})
		apiError(t, err, paddle.ErrInvalidToken)
		_, err = stranger.ListClientTokens(ctx(t), &paddle.ListClientTokensRequest{})
		apiError(t, err, paddle.ErrInvalidToken)
	})

	t.Run("authentication_malformed for a key that is not a ctkn key", func(t *testing.T) {
		bogus, err := paddle.New("pdl_sdbx_apikey_not_ours", paddle.WithBaseURL(baseURL))
		if err != nil {
			t.Fatal(err)
		}
		_, err = bogus.GetClientToken(ctx(t), &paddle.GetClientTokenRequest{ClientTokenID: unknownID})
		apiError(t, err, paddle.ErrAuthenticationMalformed)
	})
}

// The base URL must be a bare origin: the SDK keeps only its scheme and
// host (a path prefix would be dropped), which is what ctkn serves.
func TestBaseURLIsAnOrigin(t *testing.T) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Path != "" && u.Path != "/") {
		t.Fatalf("CTKN_API_URL %q has a path, which this SDK ignores", baseURL)
	}
}
