package bill

/*
#include <stdlib.h>
#include <bill.h>
*/
import "C"

import (
	"bytes"
	"math"
	"net/url"
	"strings"
	"time"
	"unsafe"
)

// API is the BILL API version (bill_api).
type API uint32

// API versions. The zero value means the library default (v3).
const (
	V2 API = C.BILL_API_V2 // form-encoded {base}/Login.json etc.
	V3 API = C.BILL_API_V3 // JSON {base}/v3/..., devKey/sessionId headers
)

// Environment picks the default base URL (bill_environment).
type Environment uint32

// Environments. The zero value is Production, the library default.
const (
	Production Environment = C.BILL_ENV_PRODUCTION
	Sandbox    Environment = C.BILL_ENV_SANDBOX
)

// RefreshMode says what happens when a session nears its idle timeout (bill_refresh_mode).
type RefreshMode uint32

// Refresh modes. The zero value is Relogin, the library default.
const (
	Relogin   RefreshMode = C.BILL_REFRESH_RELOGIN   // sign in again at idle timeout minus margin
	KeepAlive RefreshMode = C.BILL_REFRESH_KEEPALIVE // GetSessionInfo / GET /v3/login/session, same id
	Lazy      RefreshMode = C.BILL_REFRESH_LAZY      // no background traffic; the next Call or Renew signs in
)

// SignInKind says how the credentials sign in (bill_sign_in_kind).
type SignInKind uint32

// Sign-in kinds. The zero value is Password, the library default.
const (
	Password  SignInKind = C.BILL_SIGN_IN_PASSWORD   // userName and password
	SyncToken SignInKind = C.BILL_SIGN_IN_SYNC_TOKEN // AP & AR sync token: name as UserName, value as Password
)

// MFA signs in as an MFA-trusted device (bill_options_set_mfa_trust).
type MFA struct {
	RememberID []byte // v3 rememberMeId / v2 mfaId; a secret
	Device     string // v3 device / v2 deviceId
}

// Options configure Login. Every zero value means "the library default"
// (see bill_options_new in bill.h). Login copies everything it needs: the
// secret byte slices (UserName, Password, DevKey, MFA.RememberID) are copied
// into C memory, handed to libbill (which keeps its own wiped copy), and that
// C copy is wiped and freed before Login returns, so the caller may wipe its
// own slices (for example with clear(b)) as soon as Login has returned. The
// same holds for SharedStore, which may carry a Redis password.
type Options struct {
	UserName []byte // BILL userName, or the sync token's name
	Password []byte // password, or the sync token's value
	DevKey   []byte // developer key
	OrgID    string // v2 orgId / v3 organizationId

	API         API
	Environment Environment
	BaseURL     string // https://, or http:// to a loopback host; "" = the environment's default

	IdleTimeout    time.Duration // how long BILL keeps an unused session (default 35 min)
	RenewMargin    time.Duration // renew this long before the idle timeout (default 1 min)
	ConnectTimeout time.Duration // TCP/TLS connect timeout (default 10 s)
	RequestTimeout time.Duration // one whole request, including queueing (default 30 s); bounds Call

	RefreshMode RefreshMode
	SignInKind  SignInKind
	MFA         MFA

	CAFile           string // trust only the PEM certificates in this file
	MaxResponseBytes int    // largest reply accepted (default 16 MiB)

	// SignInBudget sign-ins per RateWindow per devKey (default 200 per hour).
	// When either is non-zero both are passed to libbill, which checks them.
	SignInBudget int
	RateWindow   time.Duration

	MaxInFlight int // requests in flight per (devKey, organization) (default 3)

	// SharedStore turns on fleet mode: a Redis URL,
	// redis://[user:password@]host:port[/db], rediss://... (TLS, trusting
	// CAFile when set) or unix:///path/to/redis.sock. Processes with the same
	// identity (base URL, API, DevKey, OrgID, UserName) and the same store
	// share one BILL session and BILL's limits: the first signs in, the others
	// adopt its session. The URL is a secret, copied and wiped like Password;
	// libbill checks only its syntax here and never quotes it in error text.
	// An unreachable Redis never fails Login: the session falls back to local
	// limits and reports EventStoreDown. Empty = fleet mode off.
	SharedStore    []byte
	StoreKeyPrefix string        // prefix of every Redis key and channel (default "bill:"); 1-64 printable ASCII, no spaces or braces
	StoreTimeout   time.Duration // the most one Redis operation may take (default 250 ms, at most 60 s)

	// OnEvent, if set, receives the session's events. It runs on the thread
	// that caused the event (libbill's background thread, or the goroutine
	// inside Renew/Call/Logout/Close), so keep it short. It may call ID, Touch,
	// State, Trusted and LastRenewError; Renew, Call and Logout fail with
	// ErrInCallback there. A panic in it is recovered and the event dropped.
	// EventClosed is the last event. A callback that refers to its Session
	// keeps that Session reachable, so the garbage-collection safety net
	// cannot free it: call Close.
	OnEvent func(Event)
}

// apply sets every non-zero option on o. Must run with the OS thread locked.
func (opts *Options) apply(o *C.bill_options) error {
	steps := []struct {
		name string
		skip bool
		f    func() C.bill_status
	}{
		{"UserName", len(opts.UserName) == 0, func() C.bill_status {
			return withCBytes(opts.UserName, func(p *C.uint8_t, n C.size_t) C.bill_status { return C.bill_options_set_user_name(o, p, n) })
		}},
		{"Password", len(opts.Password) == 0, func() C.bill_status {
			return withCBytes(opts.Password, func(p *C.uint8_t, n C.size_t) C.bill_status { return C.bill_options_set_password(o, p, n) })
		}},
		{"DevKey", len(opts.DevKey) == 0, func() C.bill_status {
			return withCBytes(opts.DevKey, func(p *C.uint8_t, n C.size_t) C.bill_status { return C.bill_options_set_dev_key(o, p, n) })
		}},
		{"OrgID", opts.OrgID == "", func() C.bill_status {
			return withCString(opts.OrgID, func(s *C.char) C.bill_status { return C.bill_options_set_org_id(o, s) })
		}},
		{"API", opts.API == 0, func() C.bill_status { return C.bill_options_set_api_version(o, C.uint32_t(opts.API)) }},
		{"Environment", opts.Environment == 0, func() C.bill_status {
			return C.bill_options_set_environment(o, C.uint32_t(opts.Environment))
		}},
		{"BaseURL", opts.BaseURL == "", func() C.bill_status {
			return withCString(opts.BaseURL, func(s *C.char) C.bill_status { return C.bill_options_set_base_url(o, s) })
		}},
		{"IdleTimeout", opts.IdleTimeout == 0, func() C.bill_status {
			return C.bill_options_set_idle_timeout_ms(o, millis(opts.IdleTimeout))
		}},
		{"RenewMargin", opts.RenewMargin == 0, func() C.bill_status {
			return C.bill_options_set_renew_margin_ms(o, millis(opts.RenewMargin))
		}},
		{"ConnectTimeout", opts.ConnectTimeout == 0, func() C.bill_status {
			return C.bill_options_set_connect_timeout_ms(o, millis(opts.ConnectTimeout))
		}},
		{"RequestTimeout", opts.RequestTimeout == 0, func() C.bill_status {
			return C.bill_options_set_request_timeout_ms(o, millis(opts.RequestTimeout))
		}},
		{"RefreshMode", opts.RefreshMode == 0, func() C.bill_status {
			return C.bill_options_set_refresh_mode(o, C.uint32_t(opts.RefreshMode))
		}},
		{"SignInKind", opts.SignInKind == 0, func() C.bill_status {
			return C.bill_options_set_sign_in_kind(o, C.uint32_t(opts.SignInKind))
		}},
		{"MFA", len(opts.MFA.RememberID) == 0 && opts.MFA.Device == "", func() C.bill_status {
			return withCString(opts.MFA.Device, func(dev *C.char) C.bill_status {
				return withCBytes(opts.MFA.RememberID, func(p *C.uint8_t, n C.size_t) C.bill_status {
					return C.bill_options_set_mfa_trust(o, p, n, dev)
				})
			})
		}},
		{"CAFile", opts.CAFile == "", func() C.bill_status {
			return withCString(opts.CAFile, func(s *C.char) C.bill_status { return C.bill_options_set_ca_file(o, s) })
		}},
		{"MaxResponseBytes", opts.MaxResponseBytes == 0, func() C.bill_status {
			return C.bill_options_set_max_response_bytes(o, C.size_t(opts.MaxResponseBytes))
		}},
		{"SignInBudget/RateWindow", opts.SignInBudget == 0 && opts.RateWindow == 0, func() C.bill_status {
			return C.bill_options_set_sign_in_budget(o, C.uint32_t(opts.SignInBudget), millis(opts.RateWindow))
		}},
		{"MaxInFlight", opts.MaxInFlight == 0, func() C.bill_status {
			return C.bill_options_set_max_in_flight(o, C.uint32_t(opts.MaxInFlight))
		}},
		{"SharedStore", len(opts.SharedStore) == 0, func() C.bill_status {
			return withCSecretString(opts.SharedStore, func(s *C.char) C.bill_status { return C.bill_options_set_shared_store(o, s) })
		}},
		{"StoreKeyPrefix", opts.StoreKeyPrefix == "", func() C.bill_status {
			return withCString(opts.StoreKeyPrefix, func(s *C.char) C.bill_status { return C.bill_options_set_store_key_prefix(o, s) })
		}},
		{"StoreTimeout", opts.StoreTimeout == 0, func() C.bill_status {
			return C.bill_options_set_store_timeout_ms(o, millis(opts.StoreTimeout))
		}},
	}
	if err := opts.validate(); err != nil {
		return err
	}
	for _, s := range steps {
		if s.skip {
			continue
		}
		if st := s.f(); st != C.BILL_OK {
			e := lastError(st).(*Error)
			e.Message = "Options." + s.name + ": " + e.Message
			return e
		}
	}
	return nil
}

// origin is the scheme://host:port of the base URL the session uses (the
// environment's default when BaseURL is ""), "" if it cannot be parsed.
func (opts *Options) origin() string {
	base := opts.BaseURL
	if base == "" {
		stage := opts.Environment == Sandbox
		switch {
		case opts.API == V2 && stage:
			base = "https://api-stage.bill.com/api/v2"
		case opts.API == V2:
			base = "https://api.bill.com/api/v2"
		case stage:
			base = "https://gateway.stage.bill.com/connect"
		default:
			base = "https://gateway.prod.bill.com/connect"
		}
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" {
		return ""
	}
	return originOf(u)
}

// validate rejects only what cannot be expressed in the C types at all
// (negative numbers, NUL bytes in C strings); libbill checks the rest.
func (opts *Options) validate() error {
	for name, d := range map[string]time.Duration{
		"IdleTimeout": opts.IdleTimeout, "RenewMargin": opts.RenewMargin, "ConnectTimeout": opts.ConnectTimeout,
		"RequestTimeout": opts.RequestTimeout, "RateWindow": opts.RateWindow, "StoreTimeout": opts.StoreTimeout,
	} {
		if d < 0 {
			return errInvalid("Options." + name + " is negative")
		}
	}
	if opts.MaxResponseBytes < 0 {
		return errInvalid("Options.MaxResponseBytes is negative")
	}
	for name, n := range map[string]int{"SignInBudget": opts.SignInBudget, "MaxInFlight": opts.MaxInFlight} {
		if n < 0 || uint64(n) > math.MaxUint32 {
			return errInvalid("Options." + name + " is out of range")
		}
	}
	for name, s := range map[string]string{
		"OrgID": opts.OrgID, "BaseURL": opts.BaseURL, "CAFile": opts.CAFile, "MFA.Device": opts.MFA.Device,
		"StoreKeyPrefix": opts.StoreKeyPrefix,
	} {
		if strings.IndexByte(s, 0) >= 0 {
			return errInvalid("Options." + name + " contains a NUL byte")
		}
	}
	if bytes.IndexByte(opts.SharedStore, 0) >= 0 {
		return errInvalid("Options.SharedStore contains a NUL byte")
	}
	return nil
}

// millis converts a positive duration to whole milliseconds, rounding up so
// that a positive duration never becomes 0 (which would mean "default").
func millis(d time.Duration) C.uint64_t {
	return C.uint64_t((d + time.Millisecond - 1) / time.Millisecond)
}

// withCString passes s as a C string ("" as NULL) and frees it afterwards.
func withCString(s string, f func(*C.char) C.bill_status) C.bill_status {
	if s == "" {
		return f(nil)
	}
	cs := C.CString(s)
	defer C.free(unsafe.Pointer(cs))
	return f(cs)
}

// withCSecretString passes b (a secret without NUL bytes) as a C string, then
// wipes and frees the C copy. An empty b is passed as NULL.
func withCSecretString(b []byte, f func(*C.char) C.bill_status) C.bill_status {
	if len(b) == 0 {
		return f(nil)
	}
	n := C.size_t(len(b) + 1)
	p := C.malloc(n)
	buf := unsafe.Slice((*byte)(p), len(b)+1)
	copy(buf, b)
	buf[len(b)] = 0
	defer func() {
		C.bill_wipe(p, n)
		C.free(p)
	}()
	return f((*C.char)(p))
}

// withCBytes copies b (a secret) into C memory, passes it to f, then wipes
// and frees the copy. An empty b is passed as (NULL, 0).
func withCBytes(b []byte, f func(*C.uint8_t, C.size_t) C.bill_status) C.bill_status {
	if len(b) == 0 {
		return f(nil, 0)
	}
	p := C.CBytes(b)
	defer func() {
		C.bill_wipe(p, C.size_t(len(b)))
		C.free(p)
	}()
	return f((*C.uint8_t)(p), C.size_t(len(b)))
}
