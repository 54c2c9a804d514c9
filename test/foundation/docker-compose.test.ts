import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';

const ROOT = path.resolve(__dirname, '..', '..');

type ComposeService = {
  image?: string;
  build?: { context: string; dockerfile?: string } | string;
  volumes?: string[];
  command?: string[];
};

/** docker-compose cannot run here (no Docker engine): check that everything it builds or mounts exists. */
describe('docker-compose.yml', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, ComposeService>;
  };

  it('has the stack the README promises', () => {
    expect(Object.keys(compose.services)).toEqual(
      expect.arrayContaining([
        'postgres',
        'kafka',
        'mailpit',
        'migrate',
        'accounts',
        'relay',
        'mailer',
        'prometheus',
        'grafana',
      ]),
    );
  });

  it.each(Object.entries(compose.services))('%s builds and mounts only files that exist', (_name, service) => {
    if (service.build) {
      const build = typeof service.build === 'string' ? { context: service.build } : service.build;
      expect(existsSync(path.join(ROOT, build.context))).toBe(true);
      expect(existsSync(path.join(ROOT, build.context, build.dockerfile ?? 'Dockerfile'))).toBe(true);
      // The entry point given to `node --import tsx` exists in the sources the image copies.
      for (const arg of service.command ?? [])
        if (arg.endsWith('.ts')) expect(existsSync(path.join(ROOT, arg))).toBe(true);
    } else {
      expect(service.image).toBeTruthy();
    }
    for (const volume of service.volumes ?? []) {
      const host = volume.split(':')[0] ?? '';
      if (host.startsWith('.'))
        expect({ volume, exists: existsSync(path.join(ROOT, host)) }).toEqual({ volume, exists: true });
    }
  });

  it('the Dockerfile copies only paths that exist', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => (m[1] ?? '').split(/\s+/));
    expect(sources.length).toBeGreaterThan(3);
    for (const source of sources)
      expect({ source, exists: existsSync(path.join(ROOT, source)) }).toEqual({ source, exists: true });
  });
});
