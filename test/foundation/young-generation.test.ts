import { robustTrend, youngGenerationMiB } from '../../bench/proc-stats';

describe('soak: RSS is judged without V8 young generation, whose size V8 changes on its own', () => {
  it("reads the young generation's size from a service's /metrics text, undefined when it is not there", () => {
    const text = [
      '# TYPE nodejs_heap_space_size_total_bytes gauge',
      'nodejs_heap_space_size_total_bytes{service="relay",space="read_only"} 0',
      'nodejs_heap_space_size_total_bytes{space="new",service="relay"} 33554432',
      'nodejs_heap_space_size_total_bytes{service="relay",space="old"} 20709376',
    ].join('\n');
    expect(youngGenerationMiB(text)).toBe(32);
    expect(youngGenerationMiB('nodejs_heap_space_size_total_bytes{space="old"} 1048576')).toBeUndefined();
    expect(youngGenerationMiB('')).toBeUndefined();
  });

  it('when RSS swings with the young generation (the relay of the 20:55 soak), then RSS without it is judged flat', () => {
    // That run's relay, minutes 3..10: RSS, and the young generation its /metrics read in the same minutes
    // (every 30 s: 4-8, 16-32, 32, 8-16, then 32 MiB). The earlier soak failed on the same swing (+11.7 %).
    const rss = [103, 117, 125, 103, 124, 125, 125, 125];
    const young = [8, 24, 32, 12, 32, 32, 32, 32];
    expect(robustTrend(rss).growth).toBeGreaterThan(0.08);
    const rest = robustTrend(rss.map((r, i) => r - (young[i] ?? 0)));
    expect(Math.abs(rest.growth)).toBeLessThan(0.03);
  });

  it('when the old generation leaks while the young generation shrinks, then the leak is still over the limit', () => {
    const rss = Array.from({ length: 8 }, (_, i) => 130 + 2 * i - (i >= 4 ? 16 : 0));
    const young = [32, 32, 32, 32, 16, 16, 16, 16];
    expect(robustTrend(rss.map((r, i) => r - (young[i] ?? 0))).growth).toBeGreaterThan(0.1);
  });
});
