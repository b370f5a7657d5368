package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/tracedup/tracedup/relay"
)

// passwordEnv names the environment variable the SASL password is read
// from when -kafka-password is not given (a flag shows in ps).
const passwordEnv = "TRACEDUP_KAFKA_PASSWORD"

// kafkaFlags are the command's Kafka settings.
type kafkaFlags struct {
	brokers, topic, group, role string
	tls                         bool
	mechanism, user, password   string
	commitInterval              time.Duration
}

func addKafkaFlags(fs *flag.FlagSet) *kafkaFlags {
	k := &kafkaFlags{}
	fs.StringVar(&k.brokers, "kafka", "", "comma-separated Kafka seed brokers, host:port: relays then share the work through a topic keyed by trace id (any relay accepts SDKs, the relays of -group decide); without it everything stays in this process")
	fs.StringVar(&k.topic, "topic", relay.DefaultTopic, "with -kafka: the topic, created beforehand (see the README)")
	fs.StringVar(&k.group, "group", relay.DefaultGroup, "with -kafka: the consumer group of the deciding relays")
	fs.StringVar(&k.role, "role", string(relay.RoleBoth), "with -kafka: both (accept SDKs and decide), ingest (accept SDKs, produce to the topic) or decide (consume and forward upstream; SDKs are refused)")
	fs.DurationVar(&k.commitInterval, "commit-interval", 0, "with -kafka: how often a deciding relay checkpoints (lets held traces be decided, hands them upstream, commits its offsets); what a crash makes the group read again (default: -window)")
	fs.BoolVar(&k.tls, "kafka-tls", false, "with -kafka: connect with TLS, verified against the system's roots")
	fs.StringVar(&k.mechanism, "kafka-sasl", "", "with -kafka: SASL mechanism: plain, scram-sha-256 or scram-sha-512 (with -kafka-user and the password)")
	fs.StringVar(&k.user, "kafka-user", "", "with -kafka-sasl: the SASL user")
	fs.StringVar(&k.password, "kafka-password", "", "with -kafka-sasl: the SASL password; prefer the environment variable "+passwordEnv+" (a flag shows in ps); never printed")
	return k
}

// config returns the relay's Kafka configuration, false without -kafka.
func (k *kafkaFlags) config() (relay.KafkaConfig, bool, error) {
	if k.brokers == "" {
		return relay.KafkaConfig{}, false, nil
	}
	kc := relay.KafkaConfig{Topic: k.topic, Group: k.group, Role: relay.Role(k.role), CommitInterval: k.commitInterval}
	for _, b := range strings.Split(k.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			kc.Brokers = append(kc.Brokers, b)
		}
	}
	switch kc.Role {
	case relay.RoleBoth, relay.RoleIngest, relay.RoleDecide:
	default:
		return kc, true, fmt.Errorf("-role %q: want both, ingest or decide", k.role)
	}
	if k.tls {
		kc.Options = append(kc.Options, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	password := k.password
	if password == "" {
		password = os.Getenv(passwordEnv)
	}
	switch k.mechanism {
	case "":
	case "plain", "scram-sha-256", "scram-sha-512":
		if k.user == "" || password == "" {
			return kc, true, errors.New("-kafka-sasl needs -kafka-user and a password (-kafka-password or " + passwordEnv + ")")
		}
		switch k.mechanism {
		case "plain":
			kc.Options = append(kc.Options, kgo.SASL(plain.Auth{User: k.user, Pass: password}.AsMechanism()))
		case "scram-sha-256":
			kc.Options = append(kc.Options, kgo.SASL(scram.Auth{User: k.user, Pass: password}.AsSha256Mechanism()))
		default:
			kc.Options = append(kc.Options, kgo.SASL(scram.Auth{User: k.user, Pass: password}.AsSha512Mechanism()))
		}
	default:
		return kc, true, fmt.Errorf("-kafka-sasl %q: want plain, scram-sha-256 or scram-sha-512", k.mechanism)
	}
	return kc, true, nil
}
