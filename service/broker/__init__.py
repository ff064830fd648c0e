"""RabbitMQ: connection, topology, publishing and the outbox relay."""
