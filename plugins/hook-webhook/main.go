// Command hook-webhook is a Ferry hook plugin: it POSTs each event as JSON to a URL, signed
// with HMAC-SHA256, retrying failures, and lets the receiver veto checks through its answer.
//
//	ferry-agent --root /srv/ferry --plugin '/usr/lib/ferry/hook-webhook -url https://hooks.example.org/ferry -secret-file /etc/ferry/webhook.key'
//
// Each request carries
//
//	Content-Type: application/json          the plugins.Event, as JSON
//	X-Ferry-Event: succeeded                 its kind
//	X-Ferry-Timestamp: 1767225600            Unix seconds
//	X-Ferry-Signature: sha256=HEX            HMAC-SHA256 of "TIMESTAMP.BODY" under the secret
//
// Receivers recompute the signature and reject stale timestamps. For checks (kind
// before_start or before_publish) a 2xx answer with a JSON body {"allow": false, "reason": "…"}
// denies; a 2xx answer without a body, or with "allow": true, allows. Anything else (after the
// retries) is an error, and the agent applies the hook's fail-open or fail-closed setting.
package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ferry-dev/ferry/plugins"
)

func main() {
	fs := flag.NewFlagSet("hook-webhook", flag.ExitOnError)
	url := fs.String("url", "", "URL to POST events to (required)")
	secretFile := fs.String("secret-file", "", "file holding the HMAC secret (required; never on the command line)")
	retries := fs.Int("retries", 3, "retries of a failed POST (network error or 5xx), within the agent's timeout")
	_ = fs.Parse(os.Args[1:])
	if *url == "" || *secretFile == "" {
		fmt.Fprintln(os.Stderr, "hook-webhook: -url and -secret-file are required")
		os.Exit(2)
	}
	secret, err := os.ReadFile(*secretFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "hook-webhook: -secret-file:", err)
		os.Exit(2)
	}
	w := &webhook{url: *url, secret: bytes.TrimRight(secret, "\r\n"), retries: max(0, *retries),
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	plugins.Serve(plugins.Impl{Name: "hook-webhook", Version: "1", Hook: w})
}

type webhook struct {
	url     string
	secret  []byte
	retries int
	client  *http.Client
}

// Sign is the X-Ferry-Signature value of body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (w *webhook) Notify(ctx context.Context, e plugins.Event) error {
	_, err := w.post(ctx, e)
	return err
}

func (w *webhook) Check(ctx context.Context, e plugins.Event) (plugins.Decision, error) {
	body, err := w.post(ctx, e)
	if err != nil {
		return plugins.Decision{}, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return plugins.Decision{Allow: true}, nil
	}
	var d plugins.Decision
	if err := json.Unmarshal(body, &d); err != nil {
		return plugins.Decision{}, fmt.Errorf("answer is not {\"allow\":…,\"reason\":…}: %w", err)
	}
	return d, nil
}

// post sends e, retrying network errors and 5xx answers with backoff while ctx lasts, and
// returns the 2xx answer's body (at most 64 KiB).
func (w *webhook) post(ctx context.Context, e plugins.Event) ([]byte, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	delay := 100 * time.Millisecond
	var last error
	for try := 0; try <= w.retries; try++ {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), last)
			case <-time.After(delay):
			}
			delay *= 2
		}
		var retry bool
		var out []byte
		out, retry, last = w.once(ctx, e, body)
		if last == nil {
			return out, nil
		}
		if !retry {
			break
		}
	}
	return nil, last
}

func (w *webhook) once(ctx context.Context, e plugins.Event, body []byte) ([]byte, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return nil, false, err
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "ferry-hook-webhook/1")
	req.Header.Set("X-Ferry-Event", string(e.Kind))
	req.Header.Set("X-Ferry-Timestamp", ts)
	req.Header.Set("X-Ferry-Signature", Sign(w.secret, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return nil, ctx.Err() == nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 500:
		return nil, true, fmt.Errorf("%s: %s", w.url, resp.Status)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, false, fmt.Errorf("%s: %s %s", w.url, resp.Status, firstLine(out))
	case err != nil:
		return nil, true, err
	}
	return out, false, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	if len(s) > 200 {
		s = s[:200]
	}
	return strings.TrimSpace(s)
}
