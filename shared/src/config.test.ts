import { z } from 'zod';
import { commonEnv, ConfigError, envBool, envInt, parseEnv } from './config';

const schema = z.object({
  ...commonEnv(3000),
  FLAG: envBool(false),
  COUNT: envInt(5, 1, 10),
  SECRET: z.string().min(32),
});

describe('parseEnv', () => {
  it('applies defaults and types every field', () => {
    const config = parseEnv(schema, { SECRET: 'x'.repeat(32) });
    expect(config).toMatchObject({
      PORT: 3000,
      FLAG: false,
      COUNT: 5,
      KAFKA_BROKERS: ['127.0.0.1:9092'],
      KAFKA_TOPIC_PREFIX: '',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('treats an empty variable as unset', () => {
    expect(parseEnv(schema, { SECRET: 'x'.repeat(32), PORT: '' }).PORT).toBe(3000);
  });

  it('names every offending variable at once and never echoes a value', () => {
    let error: unknown;
    try {
      parseEnv(schema, {
        PORT: 'abc',
        FLAG: 'maybe',
        COUNT: '11',
        SECRET: 'tooshort-secret',
        KAFKA_BROKERS: 'nohostport',
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join(' | ');
    for (const name of ['PORT', 'FLAG', 'COUNT', 'SECRET', 'KAFKA_BROKERS']) expect(problems).toContain(name);
    expect(problems).not.toContain('tooshort-secret');
  });

  it('parses a broker list', () => {
    expect(parseEnv(schema, { SECRET: 'x'.repeat(32), KAFKA_BROKERS: 'a:9092, b:9093' }).KAFKA_BROKERS).toEqual([
      'a:9092',
      'b:9093',
    ]);
  });

  it(
    'takes the Kafka SSL and SASL settings, and refuses a mechanism without a password or an unknown ' +
      'mechanism, never echoing values',
    () => {
      const base = { SECRET: 'x'.repeat(32) };
      expect(
        parseEnv(schema, {
          ...base,
          KAFKA_SSL: 'true',
          KAFKA_SASL_MECHANISM: 'scram-sha-512',
          KAFKA_SASL_USERNAME: 'svc',
          KAFKA_SASL_PASSWORD: 'pw',
        }),
      ).toMatchObject({
        KAFKA_SSL: true,
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'svc',
      });
      expect(() =>
        parseEnv(schema, { ...base, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'svc-user-name' }),
      ).toThrow(/KAFKA_SASL_PASSWORD/);
      expect(() =>
        parseEnv(schema, {
          ...base,
          KAFKA_SASL_MECHANISM: 'gssapi',
          KAFKA_SASL_USERNAME: 'u',
          KAFKA_SASL_PASSWORD: 'hunter2-kafka',
        }),
      ).toThrow(/KAFKA_SASL_MECHANISM/);
      try {
        parseEnv(schema, { ...base, KAFKA_SASL_PASSWORD: 'hunter2-kafka' });
      } catch (err) {
        expect((err as ConfigError).problems.join(' ')).not.toContain('hunter2-kafka');
      }
    },
  );
});
