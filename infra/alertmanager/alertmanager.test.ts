import { spawnSync } from 'node:child_process';
import path from 'node:path';

const CONFIG = path.join(__dirname, 'alertmanager.yml');
const amtool = (...args: string[]) => spawnSync('amtool', args, { encoding: 'utf8' });

describe('infra/alertmanager/alertmanager.yml (amtool)', () => {
  it('when amtool checks it, then the config is valid', () => {
    const res = amtool('check-config', CONFIG);
    expect(`${res.stdout}${res.stderr}`).toContain('SUCCESS');
    expect(res.status).toBe(0);
  });

  it.each([
    [['alertname=SmtpCircuitOpen', 'severity=critical', 'job=mailer'], 'admins'],
    [['alertname=ServiceDown', 'severity=critical', 'job=relay'], 'admins'],
    [['alertname=SmtpOnFallback', 'severity=warning', 'job=mailer'], 'team'],
    [['alertname=MailSmtpTimeoutRatioHigh', 'severity=warning', 'job=mailer'], 'team'],
  ])('when an alert %j arrives, then it is routed to %s', (labels, receiver) => {
    const res = amtool('config', 'routes', 'test', `--config.file=${CONFIG}`, ...labels);
    expect(res.stdout.trim()).toBe(receiver);
  });
});
