// Run as a separate process: loads the datapath into a pin root, attaches it to the given
// interfaces, prints the program ids and exits, leaving programs attached and pinned.
import { openDatapath } from '../datapath.ts';

const [pinRoot, netns, ...ifindexes] = process.argv.slice(2);
const dp = openDatapath({ pinRoot: pinRoot!, netns: netns! });
for (const i of ifindexes) dp.attachEndpoint({ ifindex: Number(i) });
console.log(JSON.stringify({ programs: dp.programIds(), maps: dp.mapIds() }));
dp.close();
