// The `isthmus` command. Thin: parses flags and calls the modules. Each command group lives in
// its own file under cli/ and registers itself here.
import { Command } from 'commander';
import { register as registerPolicy } from './policy.ts';
import { register as registerCerts } from './certs.ts';
import { register as registerLab } from './lab.ts';
import { register as registerDemo } from './demo.ts';
import { register as registerAgent } from './agent.ts';
import { register as registerService } from './service.ts';
import { register as registerWireguard } from './wireguard.ts';
import { register as registerClustermesh } from './clustermesh.ts';

export function buildProgram(): Command {
  const program = new Command('isthmus')
    .description('Multi-cluster network mesh for Kubernetes: eBPF policy, ClusterMesh, WireGuard')
    .showHelpAfterError();
  registerPolicy(program);
  registerCerts(program);
  registerLab(program);
  registerDemo(program);
  registerAgent(program);
  registerService(program);
  registerWireguard(program);
  registerClustermesh(program);
  return program;
}

await buildProgram().parseAsync(process.argv);
