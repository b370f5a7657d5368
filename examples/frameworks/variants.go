package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"

	"github.com/getsentry/sentry-go"
	sentryecho "github.com/getsentry/sentry-go/echo"
	sentrygin "github.com/getsentry/sentry-go/gin"
	sentryhttp "github.com/getsentry/sentry-go/http"
	sentrylogrus "github.com/getsentry/sentry-go/logrus"
	sentryslog "github.com/getsentry/sentry-go/slog"
	"github.com/gin-gonic/gin"
	"github.com/go-chi/chi/v5"
	"github.com/labstack/echo/v4"
	"github.com/sirupsen/logrus"
	"go.opentelemetry.io/contrib/instrumentation/github.com/gin-gonic/gin/otelgin"
	"go.opentelemetry.io/contrib/instrumentation/github.com/labstack/echo/otelecho"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/tracedup/tracedup/dedup/deduphttp"
	"github.com/tracedup/tracedup/sentryotel"
)

// variant is one way of writing the shop's services: a router with its OTel
// and Sentry middleware, and a way of capturing the error.
type variant struct {
	name        string
	description string
	// server returns s's HTTP handler.
	server func(s *service) http.Handler
}

// variants are the shop's, in the order the table lists them.
var variants = []variant{
	{"gin", "gin with otelgin and sentrygin, deduphttp.NewHandler around the engine, sentryotel.CaptureException(c, err) with the *gin.Context", ginServer(captureGin)},
	{"gin+slog", "gin as above, the error logged with slog.ErrorContext(c, ...), the *gin.Context as the context", ginServer(logGinWithSlog)},
	{"echo", "echo v4 with otelecho and sentryecho, deduphttp.NewHandler around it, sentryotel.CaptureException(c.Request().Context(), err)", echoServer},
	{"chi", "chi with otelhttp's middleware in r.Use and sentryhttp, deduphttp.NewHandler around the router", chiServer},
	{"net/http", "otelhttp outermost, then deduphttp, then sentryhttp (the control)", netHTTPServer(captureException)},
	{"slog", "net/http as the control, the error logged with slog.ErrorContext(ctx, ...) through sentry-go's slog handler", netHTTPServer(logWithSlog)},
	{"logrus", "net/http as the control, the error logged with logrus WithContext(ctx).WithError(err).Error(...) through sentry-go's logrus hook", netHTTPServer(logWithLogrus)},
}

func variantNamed(name string) (variant, bool) {
	for _, v := range variants {
		if v.name == name {
			return v, true
		}
	}
	return variant{}, false
}

func init() { gin.SetMode(gin.ReleaseMode) }

// ginServer: otelgin starts the request's span inside the engine, so the
// handler around the engine sees none when the request comes in. The error
// is captured with the *gin.Context itself, whose Value does not reach the
// request's context (ContextWithFallback is off by default).
func ginServer(capture func(c *gin.Context, s *service, err error)) func(s *service) http.Handler {
	return func(s *service) http.Handler { return ginEngine(s, capture) }
}

func ginEngine(s *service, capture func(c *gin.Context, s *service, err error)) http.Handler {
	engine := gin.New()
	engine.Use(
		otelgin.Middleware(s.name, otelgin.WithTracerProvider(s.tp), otelgin.WithPropagators(propagator)),
		sentrygin.New(sentrygin.Options{}),
	)
	engine.POST(path[s.name], func(c *gin.Context) {
		ch, err := decode(c.Request.Body)
		if err != nil {
			c.String(http.StatusBadRequest, err.Error())
			return
		}
		status, err := s.handle(c.Request.Context(), ch)
		if err != nil {
			capture(c, s, err)
			c.String(status, err.Error())
			return
		}
		c.String(status, "ok")
	})
	return deduphttp.NewHandler(engine, s.transport)
}

// echoServer: otelecho starts the span inside echo, as otelgin does in gin.
// echo.Context is not a context.Context: the capture takes the request's.
func echoServer(s *service) http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.Use(
		otelecho.Middleware(s.name, otelecho.WithTracerProvider(s.tp), otelecho.WithPropagators(propagator)),
		// sentryecho takes its hub from echo's own store, not from the
		// request's context: hand it the request's.
		func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if hub := sentry.GetHubFromContext(c.Request().Context()); hub != nil {
					sentryecho.SetHubOnContext(c, hub)
				}
				return next(c)
			}
		},
		sentryecho.New(sentryecho.Options{}),
	)
	e.POST(path[s.name], func(c echo.Context) error {
		ch, err := decode(c.Request().Body)
		if err != nil {
			return c.String(http.StatusBadRequest, err.Error())
		}
		status, err := s.handle(c.Request().Context(), ch)
		if err != nil {
			sentryotel.CaptureException(c.Request().Context(), err)
			return c.String(status, err.Error())
		}
		return c.String(status, "ok")
	})
	return deduphttp.NewHandler(e, s.transport)
}

// chiServer: otelhttp's middleware in the router's chain, so the span
// starts inside the router.
func chiServer(s *service) http.Handler {
	r := chi.NewRouter()
	r.Use(
		otelhttp.NewMiddleware(s.name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator)),
		sentryhttp.New(sentryhttp.Options{}).Handle,
	)
	r.Post(path[s.name], serveWith(s, captureException))
	return deduphttp.NewHandler(r, s.transport)
}

// netHTTPServer is the README's way: otelhttp outermost, so the span is in
// the request's context when deduphttp sees it.
func netHTTPServer(capture func(ctx context.Context, s *service, err error)) func(s *service) http.Handler {
	return func(s *service) http.Handler {
		mux := http.NewServeMux()
		mux.HandleFunc("POST "+path[s.name], serveWith(s, capture))
		h := deduphttp.NewHandler(sentryhttp.New(sentryhttp.Options{}).Handle(mux), s.transport)
		return otelhttp.NewHandler(h, s.name, otelhttp.WithTracerProvider(s.tp), otelhttp.WithPropagators(propagator))
	}
}

// serveWith is a net/http handler for s that reports its error with capture.
func serveWith(s *service, capture func(ctx context.Context, s *service, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c, err := decode(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		status, err := s.handle(r.Context(), c)
		if err != nil {
			capture(r.Context(), s, err)
			http.Error(w, err.Error(), status)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}
}

func captureException(ctx context.Context, _ *service, err error) {
	sentryotel.CaptureException(ctx, err)
}

func captureGin(c *gin.Context, _ *service, err error) {
	sentryotel.CaptureException(c, err)
}

// logGinWithSlog logs err with the *gin.Context as the context: the hook
// finds the request behind it.
func logGinWithSlog(c *gin.Context, s *service, err error) {
	s.slog.ErrorContext(c, err.Error(), "error", err)
}

// logWithSlog logs err through sentry-go's slog handler, which captures an
// event at level error with ctx in its hint and takes the hub from ctx.
func logWithSlog(ctx context.Context, s *service, err error) {
	s.slog.ErrorContext(ctx, err.Error(), "error", err)
}

// newSlog returns a logger whose error records go to client as events, the
// handler's default (its Sentry Logs need EnableLogs, which the shop leaves
// off). The handler takes the hub from the log call's context, else from
// the context it was made with: the client's.
func newSlog(client *sentry.Client) *slog.Logger {
	hub := sentry.NewHub(client, sentry.NewScope())
	return slog.New(sentryslog.Option{}.NewSentryHandler(sentry.SetHubOnContext(context.Background(), hub)))
}

// logWithLogrus logs err through sentry-go's logrus event hook, which puts
// the entry's context in the event's hint.
func logWithLogrus(ctx context.Context, s *service, err error) {
	s.log.WithContext(ctx).WithError(err).Error(err.Error())
}

// newLogrus returns a logger that sends error entries to client as events,
// through sentry-go's logrus event hook.
func newLogrus(client *sentry.Client) *logrus.Logger {
	log := logrus.New()
	log.SetOutput(io.Discard)
	//lint:ignore SA1019 sentry-go deprecates events from log entries in favour of Sentry Logs, but services log their errors this way today
	log.AddHook(sentrylogrus.NewEventHookFromClient([]logrus.Level{logrus.ErrorLevel}, client))
	return log
}
