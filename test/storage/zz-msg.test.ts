import { it } from 'vitest';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
it('msgs', async () => {
  const show = (e: any) => console.log('ERR', e.code, '|', e.message, '|', JSON.stringify(e.details));
  await new LocalObjectStore({ path: '/proc/nope' }).check().then(() => console.log('resolved?'), show);
  await new LocalObjectStore({ path: '/etc/passwd/x' }).put('a', Buffer.from('x')).then(() => console.log('resolved?'), show);
  await new LocalObjectStore({ path: '/sys/kernel' }).put('a', Buffer.from('x')).then(() => console.log('resolved?'), show);
});
