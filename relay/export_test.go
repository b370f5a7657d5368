package relay

// CrashKafka stops the Server's consumer as a crash would: no checkpoint,
// nothing more committed.
func (s *Server) CrashKafka() { s.kafka.consumer.Crash() }
