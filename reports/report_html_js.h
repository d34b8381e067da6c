/* report_html_js: the page's own JavaScript (the request table: sort, filter,
 * pages; and the ?selftest hook the browser test drives). Plain ES5, no
 * libraries; every value reaches the DOM through textContent. */
#ifndef AR_REPORT_HTML_JS_H
#define AR_REPORT_HTML_JS_H

/* runs first: collects errors and alert() calls so the self-test can see them */
static const char rpt_js_head[] =
	"window.__arErrors=[];window.addEventListener('error',function(e){__arErrors.push(String(e.message))});"
	"window.__arAlerts=[];window.alert=function(m){__arAlerts.push(String(m))};";

static const char rpt_js_table[] =
	"(function(){\n"
	"var D=JSON.parse(document.getElementById('ar-data').textContent);\n"
	"var cols=D.cols,types=D.types,rows=D.rows,cfg=D.configs,PS=100;\n"
	"var view=[],lc=[],sortCol=-1,asc=true,page=0,q='';\n"
	"var tb=document.getElementById('ar-tbody'),info=document.getElementById('ar-info');\n"
	"var filt=document.getElementById('ar-filter'),ths=document.querySelectorAll('#ar-table th');\n"
	"function val(r,c){var v=rows[r][c];return c===0?cfg[v]:v;}\n"
	"function txt(r,c){var v=val(r,c);return v===null?'':String(v);}\n"
	"function low(r){if(lc[r]===undefined){var s=[];for(var c=0;c<cols.length;c++)s.push(txt(r,c));"
	"lc[r]=s.join('\\u0001').toLowerCase();}return lc[r];}\n"
	"function sortView(){var c=sortCol,num=types[c]==='n';view.sort(function(a,b){var x=val(a,c),y=val(b,c);\n"
	" if(x===null||y===null)return x===y?a-b:(x===null?1:-1);\n"
	" var d=num?x-y:(x<y?-1:x>y?1:0);return (asc?d:-d)||a-b;});}\n"
	"function apply(){view=[];for(var i=0;i<rows.length;i++)if(!q||low(i).indexOf(q)>=0)view.push(i);\n"
	" if(sortCol>=0)sortView();page=0;render();}\n"
	"function render(){var f=document.createDocumentFragment(),n=view.length,pages=Math.max(1,Math.ceil(n/PS));\n"
	" if(page>=pages)page=pages-1;var lo=page*PS,hi=Math.min(n,lo+PS);\n"
	" for(var i=lo;i<hi;i++){var tr=document.createElement('tr'),r=view[i];\n"
	"  for(var c=0;c<cols.length;c++){var td=document.createElement('td');td.textContent=txt(r,c);\n"
	"   if(types[c]==='n')td.className='n';else if(cols[c]==='outcome'&&rows[r][c]!=='ok')td.className='bad';tr.appendChild(td);}\n"
	"  f.appendChild(tr);}\n"
	" while(tb.firstChild)tb.removeChild(tb.firstChild);tb.appendChild(f);\n"
	" info.textContent=(n?'rows '+(lo+1)+'\\u2013'+hi+' of '+n:'no rows')+(n<rows.length?' (filtered from '+rows.length+')':'')"
	"+' \\u00b7 page '+(page+1)+' of '+pages;\n"
	" for(var k=0;k<ths.length;k++)ths[k].setAttribute('aria-sort',k===sortCol?(asc?'ascending':'descending'):'none');}\n"
	"function sortBy(c){if(sortCol===c)asc=!asc;else{sortCol=c;asc=true;}sortView();page=0;render();}\n"
	"for(var k=0;k<ths.length;k++)(function(c){ths[c].addEventListener('click',function(){sortBy(c);});})(k);\n"
	"filt.addEventListener('input',function(){q=filt.value.toLowerCase();apply();});\n"
	"document.getElementById('ar-prev').addEventListener('click',function(){if(page>0){page--;render();}});\n"
	"document.getElementById('ar-next').addEventListener('click',function(){page++;render();});\n"
	"apply();var tLoad=performance.now();\n"
	"if(/[?&]selftest\\b/.test(location.search))selftest();\n"
	"function shown(c){var o=[],trs=tb.rows;for(var i=0;i<trs.length;i++)o.push(trs[i].cells[c].textContent);return o;}\n"
	"function selftest(){var out=[];function ok(n,c,d){out.push((c?'PASS ':'FAIL ')+n+(d?': '+d:''));}\n"
	" var t0=performance.now();\n"
	" if(rows.length<2){out.push('SKIP sort and filter: '+rows.length+' rows');}else{\n"
	" var c=cols.indexOf('ttft_ms'),before=shown(c).join('|');\n"
	" ths[c].click();var a=shown(c),good=a.length>1;\n"
	" for(var i=1;i<a.length;i++)if(a[i]!==''&&a[i-1]!==''&&+a[i]<+a[i-1])good=false;\n"
	" ok('sort-ascending',good&&a.join('|')!==before,a.slice(0,5).join(','));\n"
	" ths[c].click();a=shown(c);good=a.length>1&&a.join('|')!==before;\n"
	" for(i=1;i<a.length;i++)if(a[i]!==''&&a[i-1]!==''&&+a[i]>+a[i-1])good=false;\n"
	" ok('sort-descending',good,a.slice(0,5).join(','));\n"
	" var s=cols.indexOf('session'),term=txt(rows.length-1,s),total=rows.length;\n"
	" filt.value=term;filt.dispatchEvent(new Event('input'));\n"
	" var trs=tb.rows,allm=trs.length>0;for(i=0;i<trs.length;i++){var cs=[];for(var j=0;j<trs[i].cells.length;j++)"
	"cs.push(trs[i].cells[j].textContent);if(cs.join('\\u0001').toLowerCase().indexOf(term.toLowerCase())<0)allm=false;}\n"
	" ok('filter-hides-rows',view.length<total&&allm,view.length+' of '+total+' rows match '+JSON.stringify(term));\n"
	" filt.value='';filt.dispatchEvent(new Event('input'));ok('filter-cleared',view.length===total,String(view.length));}\n"
	" ok('no-script-errors',__arErrors.length===0,__arErrors.join('; '));\n"
	" ok('no-alert-called',__arAlerts.length===0,__arAlerts.join('; '));\n"
	" ok('no-injected-elements',document.querySelectorAll('img,iframe,object,embed').length===0&&"
	"document.querySelectorAll('script').length===3);\n"
	" out.push('TIME load '+Math.round(tLoad)+' ms; table-ops '+Math.round(performance.now()-t0)+' ms; rows '+rows.length);\n"
	" var pre=document.createElement('pre');pre.id='ar-selftest';pre.textContent=out.join('\\n');document.body.appendChild(pre);}\n"
	"})();\n";

#endif
