// Entry point for `pulumi up` with an official Pulumi install (Pulumi.yaml runs the compiled dist/index.js).
// The language host calls the exported function once the module has loaded, so a refusal is the rejection
// of the promise the host awaits (reported once), not an error thrown while Node loads the module.
// `npm run up` runs the same program through the Automation API (scripts/stack.ts).
import { workstationProgram } from "./components/program";

export = () => workstationProgram();
